"""Can a UNet class learn a text-chosen motion direction at all? A toy in latent space.

    python recipes/direction_toy.py --arch unet3d --steps 600      # ModelScope's UNet3DConditionModel
    python recipes/direction_toy.py --arch motion --steps 600      # AnimateDiff's UNetMotionModel
    python recipes/direction_toy.py --steps 800 --high-noise-weight 20 --text captions [--fixed-caption | --train-text]

The shapes backbone learned colours and shapes from text but never the direction word (see the
model card). This toy strips everything else away: clips of 16 frames of 4 x 8 x 8 "latents"
holding one soft blob that moves 0.2-0.33 cells per frame (1.6-2.6 px at 64 px) right, left, down or
up across a static random texture, and a text of one token per direction (fixed embeddings).
Both UNets have the shapes backbone's sizes (blocks 64 and 128, one layer per block, cross-attention
width 128) and train the same way (ModelScope schedule, epsilon, min-SNR-5, AdamW 5e-4, batch
16). The difference under test: diffusers' UNet3DConditionModel has no temporal position
embedding (a frame can only tell where it is from the zero padding of temporal convolutions),
UNetMotionModel's temporal attention has sinusoidal frame positions.

--text captions swaps the fixed tokens for what the shapes backbone actually sees: a world-style
caption ("a small red circle moving right on a navy background", random colour, shape, size and
background words, only the direction tied to the clip) through a frozen shapes text
encoder at 24 tokens (by default a newly initialised one; --text-model names another, e.g. the
earlier release's the shipped model's training started from; --save hands the toy's UNet and
encoder to recipes.shapes.train). If the toy learns the
direction with tokens but not with captions, the text
path is what hides the word; if it learns both, the culprit is the richer world. --fixed-caption
keeps the encoder but drops the random words, one caption per direction; --train-text lets the
encoder train with the UNet; --motion-share S first refreshes the encoder as the real recipe does,
with share S of its end positions' summary on the motion words, then freezes it (--colour-share S
also gives the object colour words a share). --text shared keeps the fixed tokens but puts each
after 23 fixed keys
(--shared-keys N) that every text shares: the caption's shape without the encoder.

--colour-blobs gives each blob one of the world's eight colours (a fixed latent vector per colour word)
and names it in the caption, as the real latents' object signature depends on the colour word;
--shared-channel keeps channel 0 the same for every colour; --colours N uses only the first N colours;
--colour-from STEP trains on the plain one-colour blobs first and switches to the colour blobs after STEP.
With colours the table has a colour column too: how much of the asked colour the x0 estimate at t = 999
holds, as a fraction of what the clean clips hold (1.0 = exact, 0 = the colour word ignored).

--pool PATH swaps the blobs for real VAE latents: the one-object, constant-motion clips of a
shapes training run's latent pool (played backwards half the time, as in training), each with
its own caption under --text captions. The readout is then the x0 estimate's alignment with
each direction's mean clip (1.0 = exactly the mean clip's layout, 0 = none; see alignment).

Every --every steps it prints the high-noise layout: at t = 999 the x0 estimate's blob centroid
moves from the first 4 frames to the last 4 by "drift" cells along each word's axis. A model that
follows the word shows right/down drift > 0 and left/up drift < 0: the mean clip of each
direction drifts by +-1.0 cell on this measure (the static texture dilutes it), so that is what a
model that knows the direction exactly would show.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet3DConditionModel, UNetMotionModel

from recipes.shapes import world
from recipes.shapes.components import MODELSCOPE_SCHEDULER_CONFIG, fresh_text_encoder, timestep_loss_weights
from recipes.shapes.judge import single_mover
from recipes.shapes.text_refresh import caption_ids, label_share, refresh_text_encoder, scale_text_output, shares_fit
from recipes.shapes.train import atomic_save
from recipes.shapes.world import OPPOSITE_DIRECTIONS, reversed_caption
from vidzero.core.schedule import predict_clean

FRAMES, CELLS, CHANNELS, WIDTH = 16, 8, 4, 128
DIRECTIONS = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "down": (0.0, 1.0), "up": (0.0, -1.0)}
OPPOSITE = torch.tensor(
    [list(DIRECTIONS).index(OPPOSITE_DIRECTIONS[d]) for d in DIRECTIONS]
)  # index of each one's opposite


def make_unet(arch: str) -> torch.nn.Module:
    if arch == "unet3d":
        return UNet3DConditionModel(
            sample_size=CELLS,
            in_channels=CHANNELS,
            out_channels=CHANNELS,
            down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
            block_out_channels=(64, 128),
            layers_per_block=1,
            cross_attention_dim=WIDTH,
            attention_head_dim=8,
        )
    return UNetMotionModel(
        sample_size=CELLS,
        in_channels=CHANNELS,
        out_channels=CHANNELS,
        down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
        up_block_types=("UpBlockMotion", "CrossAttnUpBlockMotion"),
        block_out_channels=(64, 128),
        layers_per_block=1,
        cross_attention_dim=WIDTH,
        num_attention_heads=8,
        motion_num_attention_heads=8,
        motion_max_seq_length=32,
    )


def predict(unet: torch.nn.Module, noisy: torch.Tensor, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Noise prediction; UNetMotionModel takes the text once per frame (AnimateDiff's pipeline
    repeats it), UNet3DConditionModel once per clip."""
    if isinstance(unet, UNetMotionModel):
        text = text.repeat_interleave(noisy.shape[2], dim=0)
    return unet(noisy, t, encoder_hidden_states=text).sample


BLOB_COLOUR = (3.6, -2.7, 1.8, 0.9)


def colour_vectors(shared_channel: bool = False) -> torch.Tensor:
    """(colours, C): one fixed latent colour per world object colour, each as long as the plain
    blob's, for --colour-blobs (the real latents' object signature depends on the colour word).
    With `shared_channel` every colour keeps the plain blob's channel 0 (+3.6), a colour-independent
    "object here" channel, and only the other channels vary."""
    vectors = torch.randn(len(world.OBJECT_COLOURS), CHANNELS, generator=torch.Generator().manual_seed(11))
    length = torch.tensor(BLOB_COLOUR).norm()
    if not shared_channel:
        return F.normalize(vectors, dim=1) * length
    rest = F.normalize(vectors[:, 1:], dim=1) * (length**2 - BLOB_COLOUR[0] ** 2).sqrt()
    return torch.cat([torch.full((len(vectors), 1), BLOB_COLOUR[0]), rest], dim=1)


def make_batch(
    gen: torch.Generator,
    batch: int,
    colours: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, C, F, h, w) clips with unit-ish variance, (B,) direction indices and (B,) colour
    indices: the blob has BLOB_COLOUR (index 0) unless `colours` (colours, C) is given, and then
    a colour drawn per clip after every other draw, so the blobs' paths and textures are the same."""
    direction = torch.randint(0, len(DIRECTIONS), (batch,), generator=gen)
    speed = 0.2 + 0.13 * torch.rand(batch, generator=gen)
    travel = speed * (FRAMES - 1)
    start = 1.0 + torch.rand(batch, generator=gen) * (CELLS - 3.0 - travel)  # stays inside the window
    across = 1.0 + torch.rand(batch, generator=gen) * (CELLS - 3.0)
    unit = torch.tensor(list(DIRECTIONS.values()))[direction]  # (B, 2)
    along = torch.where(unit.sum(1) > 0, start, CELLS - 1.0 - start)  # right/down start low, left/up high
    f = torch.arange(FRAMES, dtype=torch.float32)
    pos_along = along[:, None] + unit.sum(1)[:, None] * speed[:, None] * f  # (B, F)
    horizontal = unit[:, 0] != 0
    x = torch.where(horizontal[:, None], pos_along, across[:, None].expand(-1, FRAMES))
    y = torch.where(horizontal[:, None], across[:, None].expand(-1, FRAMES), pos_along)
    grid = torch.arange(CELLS, dtype=torch.float32)
    blob = torch.exp(
        -((grid[None, None, None, :] - x[..., None, None]) ** 2 + (grid[None, None, :, None] - y[..., None, None]) ** 2)
        / 1.2
    )
    texture = 0.9 * torch.randn(batch, CHANNELS, 1, CELLS, CELLS, generator=gen)
    if colours is None:
        index = torch.zeros(batch, dtype=torch.long)
        colour = torch.tensor(BLOB_COLOUR)[None, :, None, None, None]
    else:
        index = torch.randint(0, len(colours), (batch,), generator=gen)
        colour = colours[index][:, :, None, None, None]
    return texture + colour * blob[:, None], direction, index


def behind_shared_keys(words: torch.Tensor, shared: int = 23) -> torch.Tensor:
    """(D, 1, W) direction tokens -> (D, shared + 1, W): each after the same `shared` fixed random
    keys of the same norm. The caption encoder's shape (24 keys, of which the texts of two directions
    share most) without the encoder itself."""
    keys = words[0].norm() * F.normalize(torch.randn(1, shared, words.shape[-1]), dim=-1)
    return torch.cat([keys.expand(len(words), -1, -1), words], dim=1)


def random_caption(
    rng: torch.Generator, direction: str, colour: str | None = None, shape: str | None = None, size: str | None = None
) -> str:
    """A one-object world caption moving `direction`; every other word (the colour, shape and size too,
    unless given) drawn at random, with the world's odds (size named half the time, background half the time)."""

    def pick(options) -> str:
        options = list(options)
        return options[int(torch.randint(0, len(options), (1,), generator=rng))]

    # every word is drawn even when given, so the random stream (and earlier runs' captions) stay the same
    size_word = ""
    if torch.rand(1, generator=rng) < 0.5:
        drawn_size = pick(world.SIZES)
        size_word = f"{size or drawn_size} "
    drawn_colour = pick(world.OBJECT_COLOURS)
    drawn_shape = pick(world.SHAPES)
    noun = f"{size_word}{colour or drawn_colour} {shape or drawn_shape}"
    text = f"{world.article(noun)} {noun} moving {direction}"
    if torch.rand(1, generator=rng) < 0.5:
        background = pick(world.BACKGROUND_COLOURS)
        text += f" on {world.article(background)} {background} background"
    return text


class CaptionText:
    """World captions through a shapes model's text encoder (frozen unless `trainable`); indexed
    like the fixed-token table with direction indices, it returns (B, tokens, width) hidden states."""

    def __init__(
        self, model: str, max_tokens: int, seed: int, fixed: bool = False, trainable: bool = False, scale: float = 1.0
    ) -> None:
        from transformers import CLIPTextModel, CLIPTokenizer

        from vidzero.models.hub import resolve_folder

        folder = str(resolve_folder(model, None, None, None, download=False)[0])  # also text-only folders
        self.tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", model_max_length=max_tokens)
        self.encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", torch_dtype=torch.float32)
        self.encoder.train(trainable).requires_grad_(trainable)
        self.trainable = trainable
        self.rng = torch.Generator().manual_seed(seed + 7)
        self.names = list(DIRECTIONS)
        self.fixed = fixed  # one caption per direction: "a red circle moving X"
        # object words every fresh caption names (a narrowed pool's colour, shape, size); the rest are random
        self.object_words: dict[str, str] = {}
        # the encoder's output times `scale` (for a CLIPTextModel: its final layer norm's weight
        # and bias times `scale`, so the model keeps its format)
        self.scale = scale

    def direction_share(self, count: int = 512) -> float:
        """Share of the mean-pooled encoding's variance that the direction explains, over `count`
        random toy captions (a fixed draw, so before/after compare)."""
        rng = torch.Generator().manual_seed(99)
        labels = torch.arange(count) % len(self.names)
        captions = [random_caption(rng, self.names[int(k)]) for k in labels]
        return label_share(self.encoder, self.tokenizer, captions, labels)

    def refresh(
        self, motion_share: float, steps: int, seed: int, distill_weight: float = 1.0, colour_share: float = 0.0
    ) -> None:
        """Re-separate the words as train_shapes_backbone.py does before freezing the encoder,
        on 4,000 world captions and their reversals, with `motion_share` on the motion words
        (and `colour_share` on the object colour words)."""
        before = self.direction_share()
        captions = [world.make_clip(seed * 10**6 + k, frames=1).caption for k in range(4000)]
        refresh_text_encoder(
            self.encoder,
            self.tokenizer,
            captions + [reversed_caption(c) for c in captions],
            steps,
            seed,
            log_every=max(1, steps // 4),
            motion_share=motion_share,
            distill_weight=distill_weight,
            colour_share=colour_share,
        )
        self.encoder.train(self.trainable).requires_grad_(self.trainable)
        print(
            f"text refresh, motion share {motion_share}, colour share {colour_share}: "
            "direction share of the mean-pooled encoding "
            f"{before:.3f} -> {self.direction_share():.3f}"
        )

    def __getitem__(self, direction: torch.Tensor) -> torch.Tensor:
        return self.encode_for(direction)

    def encode_for(self, direction: torch.Tensor, colour: torch.Tensor | None = None) -> torch.Tensor:
        """Fresh captions for these direction indices (naming these colour indices, if given), encoded."""
        if self.fixed:
            return self.encode([f"a red circle moving {self.names[int(d)]}" for d in direction.reshape(-1)])
        if colour is not None:  # --colour-blobs: the caption names the blob's colour
            names = list(world.OBJECT_COLOURS)
            return self.encode(
                [random_caption(self.rng, self.names[int(d)], names[int(c)]) for d, c in zip(direction, colour)]
            )
        return self.encode(
            [random_caption(self.rng, self.names[int(d)], **self.object_words) for d in direction.reshape(-1)]
        )

    def encode(self, captions: list[str]) -> torch.Tensor:
        ids = caption_ids(self.tokenizer, captions)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            return self.scale * self.encoder(ids)[0]


class PoolClips:
    """The one-object clips with a constant motion ("moving X") of a training run's latent pool:
    real scaled VAE latents, their captions and direction indices."""

    def __init__(self, path: str) -> None:
        state = torch.load(path, map_location="cpu")
        held = min(state["count"], state["capacity"])
        # the object words every clip shares: a run's --one-colour phase, or a recipes/narrow_pool.py pool
        self.object_words: dict[str, str] = dict(state.get("object_words") or {})
        if state.get("one_colour"):
            self.object_words["colour"] = state["one_colour"]
        names = list(DIRECTIONS)
        keep, direction, self.captions = [], [], []
        for i, caption in enumerate(state["captions"][:held]):
            mover = single_mover(caption)
            if mover is not None:
                keep.append(i)
                direction.append(names.index(mover.direction))
                self.captions.append(caption)
        self.latents = state["latents"][keep].float()
        self.direction = torch.tensor(direction)
        # each direction's mean clip over the training distribution: its own clips and the
        # opposite direction's played backwards
        reverse = OPPOSITE[self.direction]
        self.means = torch.stack(
            [
                torch.cat([self.latents[self.direction == k], self.latents[reverse == k].flip(2)]).mean(0)
                for k in range(len(names))
            ]
        )

    def batch(self, gen: torch.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """A training batch; half the clips played backwards with the opposite direction, the
        exact augmentation of train_shapes_backbone.py."""
        pick = torch.randint(0, len(self.latents), (batch,), generator=gen)
        backwards = torch.rand(batch, generator=gen) < 0.5
        clips = self.latents[pick].clone()
        clips[backwards] = clips[backwards].flip(2)
        direction = torch.where(backwards, OPPOSITE[self.direction[pick]], self.direction[pick])
        captions = [
            reversed_caption(self.captions[i]) if b else self.captions[i]
            for i, b in zip(pick.tolist(), backwards.tolist())
        ]
        return clips, direction, captions


def readout_colours(samples: int, colours: torch.Tensor | None) -> torch.Tensor | None:
    """With --colour-blobs, sample s of a readout asks for colour s mod (colours)."""
    return None if colours is None else torch.arange(samples) % len(colours)


def text_of_word(words, k: int, samples: int, colours: torch.Tensor | None = None) -> torch.Tensor:
    """(samples, tokens, width) text for direction k: fresh captions (naming the readout's
    colours, with --colour-blobs), or the fixed table's entry."""
    if isinstance(words, CaptionText):
        return words.encode_for(torch.full((samples,), k), readout_colours(samples, colours))
    return words[k].expand(samples, -1, -1)


@torch.no_grad()
def x0_per_word(
    unet,
    scheduler,
    words,
    clip_shape: tuple[int, ...],
    samples: int = 16,
    colours: torch.Tensor | None = None,
) -> torch.Tensor:
    """(directions, samples, *clip_shape): the x0 estimate at t = 999 from the same pure noise
    (fixed seed) under each direction's text; both readouts start from it."""
    z = torch.randn(samples, *clip_shape, generator=torch.Generator().manual_seed(123))
    abar = scheduler.alphas_cumprod[999]
    t = torch.full((samples,), 999)
    return torch.stack(
        [
            predict_clean(z, abar, predict(unet, z, t, text_of_word(words, k, samples, colours)))
            for k in range(len(DIRECTIONS))
        ]
    )


def alignment(unet, scheduler, words, means: torch.Tensor, samples: int = 16) -> dict[str, float]:
    """Per word, how far the x0 estimate at t = 999 moves toward that direction's mean clip:
    <x0_k - mean_j x0_j, m_k - mean_j m_j> / |m_k - mean_j m_j|^2. A model that knows the word's
    mean layout exactly reads 1.0; one that ignores the word reads 0 for every word."""
    x0 = x0_per_word(unet, scheduler, words, tuple(means.shape[1:]), samples).mean(1)
    dx, dm = x0 - x0.mean(0), means - means.mean(0)
    score = (dx * dm).flatten(1).sum(1) / dm.flatten(1).pow(2).sum(1)
    return dict(zip(DIRECTIONS, score.tolist()))


def colour_score(clips: torch.Tensor, asked: torch.Tensor, colours: torch.Tensor) -> float:
    """How much of the asked colour (B, C, F, h, w) clips hold: their mean over frames and cells,
    projected on the asked colour's direction, less its mean projection on the other colours'."""
    proj = clips.mean(dim=(2, 3, 4)) @ F.normalize(colours, dim=1).T  # (B, colours)
    own = proj.gather(1, asked[:, None])[:, 0]
    return ((own - (proj.sum(1) - own) / (len(colours) - 1)).mean()).item()


def layout_drift(unet, scheduler, words, samples: int = 16, colours: torch.Tensor | None = None) -> dict[str, float]:
    """Mean move (cells) of the x0 estimate's blob, first 4 frames to last 4, per word, at t = 999.
    The blob's mass is channel 0 (BLOB_COLOUR's +3.6), or with `colours` the estimate's
    projection on the colour each sample's caption asked for; then also "colour", the estimates'
    colour_score (the same on clean clips is what an exact estimate gives)."""
    estimates = x0_per_word(unet, scheduler, words, (CHANNELS, FRAMES, CELLS, CELLS), samples, colours)
    asked = readout_colours(samples, colours)
    grid = torch.arange(CELLS, dtype=torch.float32)
    out = {}
    for (name, (dx, _)), x0 in zip(DIRECTIONS.items(), estimates):
        if asked is None:
            mass = x0[:, 0].clamp(min=0)  # channel 0 carries the blob (+3.6)
        else:
            unit = F.normalize(colours[asked], dim=1)  # (samples, C)
            mass = torch.einsum("scfhw,sc->sfhw", x0, unit).clamp(min=0)
        total = mass.sum(dim=(2, 3)) + 1e-6
        cx, cy = (mass * grid).sum(dim=(2, 3)) / total, (mass * grid[:, None]).sum(dim=(2, 3)) / total
        axis = cx if dx else cy
        out[name] = (axis[:, -4:].mean() - axis[:, :4].mean()).item()
    if colours is not None:
        out["colour"] = colour_score(estimates.flatten(0, 1), asked.repeat(len(DIRECTIONS)), colours)
    return out


def save_for_training(path: Path, unet: torch.nn.Module, words: CaptionText, step: int) -> None:
    """Write the toy's UNet and its frozen text encoder (the output scale folded into the encoder's
    weights) as a checkpoint that train_shapes_backbone.py starts from with
    --text-encoder-from PATH --unet-from PATH: the real model then begins with a UNet that already
    turns the caption's direction into a layout (a curriculum: blobs first, then real latents)."""
    encoder = copy.deepcopy(words.encoder)
    with torch.no_grad():
        scale_text_output(encoder, words.scale)
    atomic_save(
        {"ema_unet": unet.state_dict(), "ema_text": encoder.state_dict(), "text_frozen": True, "step": step}, path
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("unet3d", "motion"), default="unet3d")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--high-noise-weight",
        type=float,
        default=1.0,
        metavar="K",
        help="as in train_shapes_backbone.py: x1/SNR, capped at K, where SNR < 1",
    )
    p.add_argument(
        "--text",
        choices=("tokens", "shared", "captions"),
        default="tokens",
        help="one fixed token per direction; that token after 23 fixed keys every text shares; "
        "or world captions through a frozen text encoder",
    )
    p.add_argument(
        "--shared-keys",
        type=int,
        default=23,
        metavar="N",
        help="with --text shared: how many shared keys come before the direction token",
    )
    p.add_argument(
        "--text-model",
        default=None,
        help="with --text captions: a folder with the text encoder to use (default: a newly initialised one; "
        "'shapes' is the shipped one)",
    )
    p.add_argument(
        "--fixed-caption",
        action="store_true",
        help='with --text captions: one caption per direction ("a red circle moving X"), no random words',
    )
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument(
        "--train-text",
        action="store_true",
        help="with --text captions: train the text encoder with the UNet (from the shipped weights)",
    )
    p.add_argument(
        "--motion-share",
        type=float,
        default=None,
        metavar="S",
        help="with --text captions: first refresh the encoder on world captions with this share of the end "
        "positions' summary on the motion words (recipes.shapes.text_refresh), then freeze it",
    )
    p.add_argument(
        "--colour-share",
        type=float,
        default=0.0,
        metavar="S",
        help="with --motion-share: also give the object colour words this share of the end positions' summary",
    )
    p.add_argument("--refresh-steps", type=int, default=400)
    p.add_argument(
        "--refresh-distill",
        type=float,
        default=1.0,
        metavar="W",
        help="with --motion-share: weight of the refresh's pull toward the current outputs",
    )
    p.add_argument(
        "--text-scale",
        type=float,
        default=1.0,
        metavar="S",
        help="with --text captions: multiply the encoder's output by S (each position's norm is about 9.4; the "
        "fixed tokens have norm 10 and differ by 14)",
    )
    p.add_argument("--pool", metavar="PATH", help="train on a shapes run's latent_pool.pt instead of blobs")
    p.add_argument(
        "--colour-blobs",
        action="store_true",
        help="with --text captions: each blob gets one of the world's colours (a fixed latent vector per colour "
        "word) and its caption names it, as the real latents' object depends on the colour word",
    )
    p.add_argument(
        "--colours",
        type=int,
        default=len(world.OBJECT_COLOURS),
        metavar="N",
        help="with --colour-blobs: use only the first N of the world's colours (2 to 8)",
    )
    p.add_argument(
        "--colour-from",
        type=int,
        default=0,
        metavar="STEP",
        help="with --colour-blobs: train on the plain one-colour blobs up to this step, the colour blobs after "
        "(a curriculum: the direction first on one object signature, then the colours)",
    )
    p.add_argument(
        "--shared-channel",
        action="store_true",
        help="with --colour-blobs: every colour keeps channel 0 at +3.6 (a colour-independent object channel)",
    )
    p.add_argument(
        "--save",
        type=Path,
        metavar="CKPT",
        help="with --text captions and --arch unet3d: write the UNet and the frozen, scaled text encoder here at "
        "every readout, for train_shapes_backbone.py --text-encoder-from CKPT --unet-from CKPT",
    )
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.save and (a.text != "captions" or a.arch != "unet3d" or a.train_text):
        p.error(
            "--save needs --text captions and --arch unet3d, without --train-text (the real recipe freezes the encoder)"
        )
    if (a.fixed_caption or a.train_text or a.motion_share is not None or a.text_scale != 1.0) and a.text != "captions":
        p.error("--fixed-caption, --train-text, --motion-share and --text-scale need --text captions")
    if a.text_scale <= 0:
        p.error("--text-scale must be positive")
    if not 2 <= a.colours <= len(world.OBJECT_COLOURS) or (
        a.colours != len(world.OBJECT_COLOURS) and not a.colour_blobs
    ):
        p.error(f"--colours must be 2 to {len(world.OBJECT_COLOURS)}, with --colour-blobs")
    if a.colour_from and (not a.colour_blobs or not 0 < a.colour_from < a.steps):
        p.error("--colour-from needs --colour-blobs and a step between 0 and --steps")
    if a.shared_channel and not a.colour_blobs:
        p.error("--shared-channel needs --colour-blobs")
    if a.colour_blobs and (a.text != "captions" or a.pool or a.fixed_caption):
        p.error("--colour-blobs needs --text captions, without --pool or --fixed-caption")
    if a.motion_share is not None and not 0 <= a.motion_share < 1:
        p.error("--motion-share must be in [0, 1)")
    if a.colour_share and (
        a.motion_share is None or a.colour_share < 0 or not shares_fit(a.motion_share, a.colour_share)
    ):
        p.error("--colour-share needs --motion-share, and the two shares must add up to less than 1")
    if a.shared_keys < 1:
        p.error("--shared-keys must be at least 1")
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    unet = make_unet(a.arch)
    words = 10 * F.normalize(torch.randn(len(DIRECTIONS), 1, WIDTH), dim=-1)  # fixed, well apart
    if a.text == "shared":
        words = behind_shared_keys(words, a.shared_keys)
    if a.text == "captions":
        words = CaptionText(
            a.text_model or str(fresh_text_encoder()),
            a.max_tokens,
            a.seed,
            fixed=a.fixed_caption,
            trainable=a.train_text,
            scale=a.text_scale,
        )
        if a.motion_share is not None:
            words.refresh(a.motion_share, a.refresh_steps, a.seed, a.refresh_distill, a.colour_share)
    scheduler = DDPMScheduler(**{k: v for k, v in MODELSCOPE_SCHEDULER_CONFIG.items() if k != "set_alpha_to_one"})
    abar = scheduler.alphas_cumprod
    weight = timestep_loss_weights(abar / (1 - abar), 5.0, a.high_noise_weight)
    params = list(unet.parameters()) + (list(words.encoder.parameters()) if a.train_text else [])
    opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.01)
    gen = torch.Generator().manual_seed(a.seed)
    print(f"{a.arch}: {sum(q.numel() for q in unet.parameters()) / 1e6:.2f} M parameters")
    pool = PoolClips(a.pool) if a.pool else None
    colours = colour_vectors(a.shared_channel)[: a.colours] if a.colour_blobs else None
    if colours is not None:  # what an exact x0 estimate's colour_score is: that of clean clips
        clips, _, index = make_batch(torch.Generator().manual_seed(5), 1024, colours)
        exact_colour = colour_score(clips, index, colours)
    if pool is not None:
        print(
            f"{len(pool.latents)} one-object moving clips from {a.pool}; "
            "readout: alignment with each direction's mean clip"
        )
        if pool.object_words and isinstance(words, CaptionText):  # ask for the only objects the pool holds
            words.object_words = pool.object_words
            print(f"every object in the pool is {pool.object_words}: readout captions name the same")
    if pool:
        print("| step | loss | right | left | down | up | s/step |")
    else:
        print(
            "| step | loss | right (x) | left (x) | down (y) | up (y) | "
            + ("colour (1.0 exact) | " if colours is not None else "")
            + "s/step |"
        )
    print("|---|---|---|---|---|---|" + ("---|" if colours is not None else "") + "---|")
    start, losses = time.time(), []
    for step in range(1, a.steps + 1):
        active = colours if step > a.colour_from else None  # --colour-from: plain blobs first
        if pool is None:
            clips, direction, colour = make_batch(gen, a.batch, active)
            text = words.encode_for(direction, colour) if active is not None else words[direction]
        else:
            clips, direction, captions = pool.batch(gen, a.batch)
            text = words.encode(captions) if isinstance(words, CaptionText) else words[direction]
        t = torch.randint(0, 1000, (a.batch,), generator=gen)
        noise = torch.randn(clips.shape, generator=gen)
        noisy = scheduler.add_noise(clips, noise, t)
        pred = predict(unet, noisy, t, text)
        loss = (F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3, 4)) * weight[t]).mean()
        opt.param_groups[0]["lr"] = 5e-4 * min(1.0, step / 100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if step % a.every == 0:
            unet.eval()
            d = (
                alignment(unet, scheduler, words, pool.means)
                if pool
                else layout_drift(unet, scheduler, words, colours=active)
            )
            unet.train()
            rate = (time.time() - start) / step
            colour_column = ""  # only with --colour-blobs; "-" while --colour-from still trains on one colour
            if colours is not None:
                colour_column = f"{d['colour'] / exact_colour:+.2f} | " if active is not None else "- | "
            print(
                f"| {step} | {sum(losses[-a.every :]) / a.every:.4f} | {d['right']:+.2f} | {d['left']:+.2f} | "
                f"{d['down']:+.2f} | {d['up']:+.2f} | {colour_column}{rate:.2f} |",
                flush=True,
            )
            if a.save:
                save_for_training(a.save, unet, words, step)


if __name__ == "__main__":
    main()
