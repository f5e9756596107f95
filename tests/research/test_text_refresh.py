"""The text-encoder refresh's motion share and the label-share readout (recipes.shapes.text_refresh)."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModel

from recipes.shapes import world
from recipes.shapes.text_refresh import (
    COLOUR_WORDS,
    MOTION_WORDS,
    caption_ids,
    label_share,
    refresh_text_encoder,
    scale_text_output,
    summary_targets,
)
from recipes.shapes.tokenizer import build_tokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tokenizer(world.vocabulary(), tmp_path_factory.mktemp("tok"), max_length=24)


def tiny_encoder(tok, seed: int = 0) -> CLIPTextModel:
    torch.manual_seed(seed)
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=24,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    )


def test_summary_targets_give_the_motion_words_their_share(tokenizer):
    captions = ["a red circle moving right on a green background", "a red circle standing still", "a red circle"]
    ids = caption_ids(tokenizer, captions)
    special = torch.tensor([tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id])
    content = ~torch.isin(ids, special)
    motion = torch.tensor(tokenizer.convert_tokens_to_ids([f"{w}</w>" for w in MOTION_WORDS]))
    assert tokenizer.unk_token_id not in motion.tolist()
    token = {
        w: tokenizer.convert_tokens_to_ids(f"{w}</w>") for w in ("a", "red", "moving", "right", "still", "standing")
    }

    plain = summary_targets(ids, content, len(tokenizer), motion)
    assert plain[0, token["a"]] == pytest.approx(2 / 9) and plain[0, token["right"]] == pytest.approx(1 / 9)
    torch.testing.assert_close(plain.sum(1), torch.ones(3))

    weighted = summary_targets(ids, content, len(tokenizer), motion, motion_share=0.8)
    assert weighted[0, token["right"]] == pytest.approx(0.8)  # the one motion word
    assert weighted[0, token["moving"]] == pytest.approx(0.2 / 8)  # "moving" says no direction
    assert weighted[0, token["a"]] == pytest.approx(0.2 * 2 / 8)
    assert weighted[1, token["still"]] == pytest.approx(0.8) and weighted[1, token["standing"]] == pytest.approx(
        0.2 / 4
    )
    torch.testing.assert_close(weighted[2], plain[2])  # no motion word: the plain bag
    torch.testing.assert_close(weighted.sum(1), torch.ones(3))


def test_summary_targets_give_motion_and_colour_words_their_shares(tokenizer):
    captions = [
        "a red circle moving right on a green background",
        "a small blue square standing still",
        "a red circle and a blue square moving up",
        "a circle moving left",
        "a red circle",
    ]
    ids = caption_ids(tokenizer, captions)
    special = torch.tensor([tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id])
    content = ~torch.isin(ids, special)
    ids_of = lambda words: torch.tensor(tokenizer.convert_tokens_to_ids([f"{w}</w>" for w in words]))  # noqa: E731
    motion, colour = ids_of(MOTION_WORDS), ids_of(COLOUR_WORDS)
    token = {
        w: tokenizer.convert_tokens_to_ids(f"{w}</w>")
        for w in ("a", "red", "blue", "green", "right", "still", "up", "left", "circle")
    }

    only_motion = summary_targets(ids, content, len(tokenizer), motion, motion_share=0.5)
    same = summary_targets(ids, content, len(tokenizer), motion, motion_share=0.5, colour_ids=colour, colour_share=0.0)
    torch.testing.assert_close(same, only_motion)  # no colour share: exactly the motion-only targets

    both = summary_targets(ids, content, len(tokenizer), motion, motion_share=0.5, colour_ids=colour, colour_share=0.4)
    torch.testing.assert_close(both.sum(1), torch.ones(len(captions)))
    # "green" here is an object colour word, so it shares the colour mass with "red"
    assert both[0, token["right"]] == pytest.approx(0.5)
    assert both[0, token["red"]] == pytest.approx(0.2) and both[0, token["green"]] == pytest.approx(0.2)
    assert both[0, token["a"]] == pytest.approx(0.1 * 2 / 6)  # other words: a circle moving on a background
    assert both[1, token["still"]] == pytest.approx(0.5) and both[1, token["blue"]] == pytest.approx(0.4)
    assert both[2, token["red"]] == pytest.approx(0.2) and both[2, token["up"]] == pytest.approx(0.5)
    # no colour word: its share goes to the other words, the motion word keeps its own
    assert both[3, token["left"]] == pytest.approx(0.5) and both[3, token["circle"]] == pytest.approx(0.5 / 3)
    # no motion word: the colour word gets its share, the rest the remaining 0.6
    assert both[4, token["red"]] == pytest.approx(0.4) and both[4, token["a"]] == pytest.approx(0.3)


def test_refresh_rejects_shares_that_add_up_to_one(tokenizer):
    with pytest.raises(ValueError, match="below 1"):
        refresh_text_encoder(
            tiny_encoder(tokenizer),
            tokenizer,
            ["a red circle"],
            steps=1,
            seed=0,
            motion_share=0.7,
            colour_share=0.3,
            log=lambda msg: None,
        )  # 0.9999999999999999 in floats


class FixedOutputs(torch.nn.Module):
    """Stands in for a text encoder: returns preset hidden states, whatever the ids."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = torch.nn.Parameter(hidden)

    def forward(self, ids):
        return (self.hidden,)


def test_label_share_is_the_between_class_share_of_the_pooled_variance(tokenizer):
    labels = torch.tensor([0, 0, 1, 1])
    # pooled (mean over 3 positions) rows: class 0 at +-1 around (5, 0), class 1 at +-1 around (-5, 0)
    pooled = torch.tensor([[6.0, 0.0], [4.0, 0.0], [-5.0, 1.0], [-5.0, -1.0]])
    hidden = pooled[:, None].repeat(1, 3, 1) + torch.tensor(
        [[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]
    )  # positions average out
    share = label_share(FixedOutputs(hidden), tokenizer, ["a"] * 4, labels)
    assert share == pytest.approx(100 / 104)  # between 4 * 25 over total 100 + 4 within
    # labels across the classes: class means (0.5, 0.5) and (-0.5, -0.5), between 4 * 0.5
    assert label_share(FixedOutputs(hidden), tokenizer, ["a"] * 4, torch.tensor([0, 1, 0, 1])) == pytest.approx(2 / 104)


def test_refresh_with_a_motion_share_makes_the_direction_a_larger_share(tokenizer):
    """On a tiny random encoder, the refresh with most of the end positions' summary on the motion
    words leaves the mean-pooled encoding far more about the direction than the plain refresh."""
    captions = [world.make_clip(seed, frames=1).caption for seed in range(300)]
    rng = torch.Generator().manual_seed(1)
    names = list(world.DIRECTIONS)
    labels = torch.arange(200) % 4
    colours, shapes = list(world.OBJECT_COLOURS), list(world.SHAPES)
    probe = [
        f"a {colours[int(torch.randint(0, len(colours), (1,), generator=rng))]} "
        f"{shapes[int(torch.randint(0, len(shapes), (1,), generator=rng))]} moving {names[int(k)]}"
        for k in labels
    ]
    shares = {}
    for share in (0.0, 0.8):
        encoder = tiny_encoder(tokenizer)
        refresh_text_encoder(
            encoder,
            tokenizer,
            captions,
            steps=150,
            seed=0,
            motion_share=share,
            distill_weight=0.0,
            log=lambda msg: None,
        )
        assert not any(p.requires_grad for p in encoder.parameters())
        shares[share] = label_share(encoder, tokenizer, probe, labels)
    assert shares[0.8] > 2 * shares[0.0] and shares[0.8] > 0.3, shares


def test_refresh_trains_an_encoder_handed_in_frozen(tokenizer):
    encoder = tiny_encoder(tokenizer).requires_grad_(False).eval()
    before = encoder(caption_ids(tokenizer, ["a red circle moving up"]))[0].detach()
    stats = refresh_text_encoder(
        encoder,
        tokenizer,
        ["a red circle moving up", "a blue square moving left"],
        steps=5,
        seed=0,
        log=lambda msg: None,
    )
    assert stats["distill"] > 0  # it moved
    assert not torch.equal(encoder(caption_ids(tokenizer, ["a red circle moving up"]))[0], before)


def test_scale_text_output_scales_the_last_hidden_state_only(tokenizer):
    encoder = tiny_encoder(tokenizer).eval()
    ids = caption_ids(tokenizer, ["a red circle moving up", "a blue square"])
    with torch.no_grad():
        before = encoder(ids)
    scale_text_output(encoder, 2.5)
    with torch.no_grad():
        after = encoder(ids)
    torch.testing.assert_close(after.last_hidden_state, 2.5 * before.last_hidden_state)
    assert type(encoder) is CLIPTextModel  # still the plain class, saved and loaded as such
