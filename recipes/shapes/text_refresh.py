"""Re-separating the words of the shapes backbone's text encoder before it is frozen.

Training code shared by recipes/train_shapes_backbone.py and recipes/direction_toy.py.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from recipes.shapes import world

# The words that say how an object moves (its direction, bouncing, or standing still): what
# --motion-share weights in the end positions' summary.
MOTION_WORDS = (*world.DIRECTIONS, "bouncing", "still")
# The object colour words: what --colour-share weights (background colours are other words).
COLOUR_WORDS = tuple(world.OBJECT_COLOURS)


def shares_fit(motion_share: float, colour_share: float) -> bool:
    """Whether the motion and colour shares leave the other words some of the summary (add up to
    below 1). Rounded, because 0.7 + 0.3 is 0.9999999999999999 in floats."""
    return round(motion_share + colour_share, 9) < 1


def log(msg: str) -> None:
    """A timestamped progress line (the training recipes' log format)."""
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def caption_ids(tokenizer, captions: Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, model_max_length) token ids, padded as the pipelines pad them."""
    return tokenizer(
        list(captions),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(device)


def summary_targets(
    ids: torch.Tensor,
    content: torch.Tensor,
    vocab: int,
    motion_ids: torch.Tensor,
    motion_share: float = 0.0,
    colour_ids: torch.Tensor | None = None,
    colour_share: float = 0.0,
) -> torch.Tensor:
    """(N, vocab) word distribution each caption's end positions must give: its bag of content
    words, each word once per occurrence; with motion_share > 0 the caption's motion words
    together get that share of the mass, with colour_share > 0 its object colour words get
    theirs, and the other words the rest. A group the caption lacks gives its share to the other
    words; captions with no weighted group, or nothing but weighted words, keep the plain bag."""
    bag = torch.zeros(len(ids), vocab, device=ids.device).scatter_add_(1, ids, content.float())
    groups = [(g, s) for g, s in ((motion_ids, motion_share), (colour_ids, colour_share)) if s > 0 and g is not None]
    if groups:
        weighted = torch.zeros_like(bag)
        left = torch.ones(len(ids), 1, device=ids.device)  # the other words' share
        in_group = torch.zeros(vocab, dtype=torch.bool, device=ids.device)
        for group_ids, share in groups:
            member = torch.zeros(vocab, dtype=torch.bool, device=ids.device)
            member[group_ids] = True
            in_group |= member
            part = bag * member
            count = part.sum(1, keepdim=True)
            weighted += share * part / count.clamp(min=1)
            left -= share * (count > 0)
        other = bag * ~in_group
        o = other.sum(1, keepdim=True)
        weighted += left * other / o.clamp(min=1)
        use = (left < 1) & (o > 0)
        bag = torch.where(use, weighted, bag)
    return bag / bag.sum(1, keepdim=True)


def refresh_text_encoder(
    text_encoder: torch.nn.Module,
    tokenizer,
    captions: list[str],
    steps: int,
    seed: int,
    log_every: int = 50,
    motion_share: float = 0.0,
    distill_weight: float = 1.0,
    log: Callable[[str], None] = log,
    colour_share: float = 0.0,
) -> dict[str, float]:
    """Re-separate every caption word in the encoder's output, then hand it back frozen.

    Why: trained jointly with the UNet, the encoder lets words the UNet does not use yet fade
    away, and the UNet cannot learn to use words that have faded: measured at step 2,786, the
    outputs of "... moving right ..." and "... moving left ..." differed by 0.67 (norm 11) at the
    direction word, against 6-13 for a colour word, and the UNet's noise prediction was the same
    for both to 5 decimals. ModelScope's encoder is a frozen pretrained CLIP whose outputs keep
    every word apart; this is the text-only stand-in. Three losses on captions alone: each
    content position must name its own token under a cosine classifier of fixed scale (so words
    are kept apart by angle, not by a large head); each end/padding position must give the
    caption's bag of words under the same classifier (most of the UNet's attention falls on
    those positions, where the direction had faded to 0.2); a distillation term keeps the
    outputs near the current ones (the UNet's mapping for the words it already uses survives).

    motion_share > 0 gives the caption's motion words that share of the end positions' bag
    (see summary_targets): with an equal bag the direction is one word in five to nine, a few
    per cent of what the end positions carry, and a UNet that starts by averaging over all keys
    barely sees it (recipes/shapes/direction_toy.py). A smaller
    distill_weight lets the outputs move further from the current ones (for a UNet trained anew).
    colour_share > 0 gives the object colour words a share as well: the UNet must draw the
    direction in the object's own colour, and an end position that carries both could let one
    attention head take where from one part of its key and what from its value. (In the toy with
    eight colours it did not help within 800 steps.)
    """
    if not shares_fit(motion_share, colour_share):
        raise ValueError("motion_share + colour_share must be below 1")
    teacher = copy.deepcopy(text_encoder).eval().requires_grad_(False)
    text_encoder.train().requires_grad_(True)
    width = text_encoder.config.hidden_size
    gen = torch.Generator().manual_seed(seed)
    device = next(text_encoder.parameters()).device
    special = torch.tensor(
        sorted({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}), device=device
    )
    motion_ids = torch.tensor(tokenizer.convert_tokens_to_ids([f"{w}</w>" for w in MOTION_WORDS]), device=device)
    colour_ids = torch.tensor(tokenizer.convert_tokens_to_ids([f"{w}</w>" for w in COLOUR_WORDS]), device=device)

    # Each word's prototype starts at its mean current output, so words that are already apart
    # (colours, shapes) start classified and barely move; faded ones start together and must part.
    with torch.no_grad():
        ids = caption_ids(tokenizer, captions[:512], device)
        content = ~torch.isin(ids, special)
        sums = torch.zeros(len(tokenizer), width, device=device).index_add_(
            0, ids[content], F.normalize(teacher(ids)[0][content], dim=-1)
        )
        seen = torch.bincount(ids[content], minlength=len(tokenizer)) > 0
        init = torch.randn(len(tokenizer), width, generator=gen).to(device)
        init[seen] = sums[seen]
    prototypes = torch.nn.Parameter(F.normalize(init, dim=-1))
    opt = torch.optim.AdamW(list(text_encoder.parameters()) + [prototypes], lr=1e-3, weight_decay=0.0)
    scale = 16.0
    stats: dict[str, float] = {}
    for step in range(steps):
        pick = torch.randint(0, len(captions), (64,), generator=gen).tolist()
        ids = caption_ids(tokenizer, [captions[i] for i in pick], device)
        hidden = text_encoder(ids)[0]
        with torch.no_grad():
            target = teacher(ids)[0]
        distill = (hidden - target).pow(2).sum(-1).mean() / target.pow(2).sum(-1).mean()
        content = ~torch.isin(ids, special)
        words = F.normalize(prototypes, dim=-1)
        identity = F.cross_entropy(scale * F.normalize(hidden[content], dim=-1) @ words.T, ids[content])
        # The end-of-text and padding positions (most of the keys the UNet attends to) must
        # summarise the whole caption: their word distribution is the caption's bag of words.
        bag = summary_targets(ids, content, len(tokenizer), motion_ids, motion_share, colour_ids, colour_share)
        ends = ~content & (ids != tokenizer.bos_token_id)
        rows = torch.arange(len(ids), device=device)[:, None].expand_as(ids)[ends]
        summary = F.cross_entropy(scale * F.normalize(hidden[ends], dim=-1) @ words.T, bag[rows])
        loss = identity + summary + distill_weight * distill
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stats = {"identity": identity.item(), "summary": summary.item(), "distill": distill.item()}
        if (step + 1) % log_every == 0:
            log(
                f"text refresh {step + 1}/{steps} word identity {stats['identity']:.3f} "
                f"summary {stats['summary']:.3f} distill {stats['distill']:.4f}"
            )
    text_encoder.eval().requires_grad_(False)
    return stats


@torch.no_grad()
def label_share(text_encoder, tokenizer, captions: Sequence[str], labels: torch.Tensor) -> float:
    """Share of the variance of the mean-pooled encoding (the mean over all positions) that the
    labels explain: between-class over total sum of squares, 0 to 1. A cross-attention whose
    queries do not yet pick keys averages over all positions, so this is how much of what it
    passes on tells the labels apart."""
    device = next(text_encoder.parameters()).device
    pooled = text_encoder(caption_ids(tokenizer, captions, device))[0].double().mean(1).cpu()
    centred = pooled - pooled.mean(0)
    between = sum((labels == k).sum() * centred[labels == k].mean(0).pow(2).sum() for k in labels.unique())
    return float(between / centred.pow(2).sum())


@torch.no_grad()
def scale_text_output(text_encoder, scale: float) -> None:
    """Multiply a CLIPTextModel's output (last_hidden_state) by `scale`, in its own weights: the
    final layer norm's weight and bias, so the model stays a plain CLIPTextModel. Why: after the
    final layer norm every position has a norm near 9.4, and what tells two directions apart is a
    part of that; a UNet's cross-attention values and gradients grow with it."""
    # transformers 5 keeps the layers on the model itself; older releases under .text_model
    norm = getattr(text_encoder, "text_model", text_encoder).final_layer_norm
    norm.weight.mul_(scale)
    norm.bias.mul_(scale)
