"""The recipes run end to end on the tiny checkpoint (they use only the public API)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recipes.shapes import world

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RECIPE_MODULES = {
    "train_shapes_backbone.py": "recipes.shapes.train",
    "pool.py": "recipes.shapes.pool",
    "direction_toy.py": "recipes.shapes.direction_toy",
    "probe_text_use.py": "recipes.shapes.probe_text_use",
    "narrow_pool.py": "recipes.shapes.narrow_pool",
    "bench_tasks.py": "recipes.bench.tasks",
    "evaluate_shapes_model.py": "recipes.shapes.evaluate_model",
}


def run(script: str, *args) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, "-m", RECIPE_MODULES[script], *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_evaluate_shapes_model_quick(tmp_path, tiny_model_dir):
    import json

    run("evaluate_shapes_model.py", "--model", tiny_model_dir, "--quick", "--out", tmp_path)
    summary = json.loads((tmp_path / "evaluation.json").read_text())["summary"]
    assert summary["prompts"] == 4
    assert set(summary) >= {"direction_accuracy", "colour_accuracy", "shape_accuracy", "present"}
    assert (tmp_path / "samples.png").exists()


def test_held_out_prompts_are_distinct_and_unseen():
    ev = load_recipe("evaluate_shapes_model.py")
    prompts = ev.held_out_prompts(64)
    assert len(set(prompts)) == 64 and not any("bouncing" in p for p in prompts)
    assert ev.HELD_OUT_SEED_BASE > 10**8  # training draws world seeds below 10**8


def load_recipe(name):
    return importlib.import_module(RECIPE_MODULES[name])


def test_bench_tasks_quick_and_baselines_on_truth(tmp_path, tiny_model_dir):
    import json

    run("bench_tasks.py", "--model", tiny_model_dir, "--quick", "--out", tmp_path)
    summary = json.loads((tmp_path / "tasks.json").read_text())["summary"]
    assert {
        "predict: vidzero",
        "predict: repeat last frame",
        "infill: vidzero inward",
        "infill: vidzero forward",
        "infill: cross-fade",
        "predict: vidzero, 4 per window",
        "infill: vidzero inward, 4 per window",
    } <= set(summary)
    for task in ("predict: vidzero", "infill: vidzero inward"):  # four frames per run: a quarter of the UNet calls
        assert summary[f"{task}, 4 per window"]["cfg_per_frame"] * 3 < summary[task]["cfg_per_frame"]
    bench = load_recipe("bench_tasks.py")
    clip = bench.cases(1)[0]
    target = range(bench.CONTEXT, bench.CONTEXT + bench.PREDICT)
    perfect = bench.score(clip.frames[list(target)], clip, target, 1.0)
    assert perfect["track_error"] < 1.0 and perfect["direction"] == 1.0
    frozen = bench.score(np.repeat(clip.frames[bench.CONTEXT - 1 : bench.CONTEXT], bench.PREDICT, 0), clip, target, 1.0)
    assert frozen["track_error"] > 4.0 and frozen["direction"] == 0.0  # the repeat baseline does not move


def test_training_time_reversal_is_exact():
    """Played backwards, a clip must score correct against the reversed caption (the training
    augmentation), for captions with constant motion, bounces and still objects."""
    from recipes.shapes.judge import score_clip

    train = load_recipe("train_shapes_backbone.py")
    checked = {"moving": 0, "bouncing": 0, "still": 0}
    for seed in range(200):
        clip = world.make_clip(seed, two_object_probability=0.0)
        backwards = train.reversed_caption(clip.caption)
        kind = next(k for k in checked if k in clip.caption)
        checked[kind] += 1
        assert score_clip(clip.frames[::-1], backwards)["direction_correct"] is not False, (clip.caption, backwards)
        if kind == "moving":
            assert (
                backwards != clip.caption and score_clip(clip.frames[::-1], clip.caption)["direction_correct"] is False
            )
        else:
            assert backwards == clip.caption
    assert min(checked.values()) > 5


def test_timestep_focus_keeps_old_draws_and_moves_the_chosen_share():
    """With no focus the draws equal plain uniform draws (runs made before the option existed stay
    reproducible); with a focus, about the asked share lands in the range and the rest stay uniform."""
    import torch

    train = load_recipe("train_shapes_backbone.py")
    plain = torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(train.draw_timesteps(torch.Generator().manual_seed(3), 64, 1000), plain)
    t = train.draw_timesteps(torch.Generator().manual_seed(3), 4000, 1000, 0.5, (600, 950))
    inside = ((t >= 600) & (t < 950)).float().mean().item()
    assert abs(inside - (0.5 + 0.5 * 0.35)) < 0.04  # focused half, plus the uniform half's 35 %
    assert t.min() >= 0 and t.max() < 1000 and (t < 600).float().mean() > 0.25
    assert ((train.draw_timesteps(torch.Generator().manual_seed(4), 500, 1000, 1.0, (700, 710)) - 705).abs() <= 5).all()


def test_one_colour_training_clips_and_the_pool_remembers_its_colour():
    """--one-colour: training clip k keeps its seed (same motion and background) but draws its one
    object in the given colour; the pool's colour tag survives a save, and older pools are
    refused (a resumed run rebuilds them), so a resumed run knows whether to re-encode."""
    import torch

    pool_module = load_recipe("pool.py")
    recipe = pool_module.ClipRecipe(0, (1.5, 2.5))
    white_recipe = pool_module.ClipRecipe(0, (1.5, 2.5), one_colour="white")
    plain = [pool_module.training_clip(recipe, k) for k in range(12)]
    white = [pool_module.training_clip(white_recipe, k) for k in range(12)]
    assert all(
        len(c.tracks) == 1 and c.tracks[0].spec.colour == "white" and " white " in f" {c.caption} " for c in white
    )
    assert len({c.tracks[0].spec.colour for c in plain}) > 3
    assert all(a.seed == b.seed and a.background_name == b.background_name for a, b in zip(plain, white))

    def tokenize(captions):
        return torch.tensor([[len(c)] for c in captions])

    cpu = torch.device("cpu")
    pool = pool_module.LatentPool(4, cpu, one_colour="white")
    captions = ["a white circle moving up", "a white square standing still"]
    pool.add(torch.zeros(2, 4, 16, 8, 8), torch.zeros(2, 16, 8, 8), captions, tokenize)
    again = pool_module.LatentPool(9, cpu)
    assert again.load_state_dict(pool.state_dict(), tokenize)
    assert (again.one_colour, again.count, again.capacity) == ("white", 2, 4)
    old = {k: v for k, v in pool.state_dict().items() if k != "format"}
    assert not pool_module.LatentPool(9, cpu).load_state_dict(old, tokenize)


def test_draw_clips_oversamples_single_movers_and_is_plain_at_zero():
    """With no mover fraction the batch draws equal plain uniform draws (earlier runs stay
    reproducible); with one, about that share plus the uniform rest's movers are one-object movers."""
    import torch

    from recipes.shapes.judge import single_mover

    train = load_recipe("train_shapes_backbone.py")
    captions = [
        "a red circle moving right",
        "a blue square standing still",
        "a cyan triangle bouncing up and down",
        "a red circle moving left and a blue square moving up",
    ] * 25  # a quarter are single movers
    plain = torch.randint(0, len(captions), (64,), generator=torch.Generator().manual_seed(5))
    assert torch.equal(train.draw_clips(torch.Generator().manual_seed(5), captions, 64), plain)
    pick = train.draw_clips(torch.Generator().manual_seed(5), captions, 4000, 0.5)
    movers = sum(single_mover(captions[i]) is not None for i in pick.tolist()) / len(pick)
    assert abs(movers - (0.5 + 0.5 * 0.25)) < 0.04
    assert all(single_mover(captions[i]) for i in train.draw_clips(torch.Generator(), captions, 200, 1.0).tolist())
    still = ["a blue square standing still"] * 10  # no movers at all: uniform draws, not a crash
    assert train.draw_clips(torch.Generator(), still, 8, 1.0).max() < 10


def test_truncated_text_positions_give_the_same_outputs():
    """A text encoder cut to fewer positions (--max-tokens with --text-encoder-from) gives the same
    outputs at the positions it keeps: CLIP's causal attention never looks ahead."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    train = load_recipe("train_shapes_backbone.py")
    torch.manual_seed(0)
    cfg = dict(
        vocab_size=40,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    long = CLIPTextModel(CLIPTextConfig(max_position_embeddings=77, **cfg)).eval()
    short = CLIPTextModel(CLIPTextConfig(max_position_embeddings=24, **cfg)).eval()
    short.load_state_dict(train.truncate_positions(long.state_dict(), 24))
    ids = torch.randint(3, 40, (3, 77))
    ids[:, 0], ids[:, 12:] = 1, 2  # a 10-word caption, end token, padding
    with torch.no_grad():
        torch.testing.assert_close(short(ids[:, :24])[0], long(ids)[0][:, :24], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(long(ids)[0][:, 23], long(ids)[0][:, 30])  # positions do differ


def test_timestep_loss_weights():
    """min-SNR-5 alone by default (the shipped run's weights); with a cap K, high-noise steps
    weigh 1/SNR more, never more than K, and SNR >= 1 is untouched."""
    import torch

    train = load_recipe("train_shapes_backbone.py")
    snr = torch.tensor([0.005, 0.09, 0.5, 1.0, 4.0, 20.0])
    plain = train.timestep_loss_weights(snr, 5.0)
    torch.testing.assert_close(plain, torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.25]))
    boosted = train.timestep_loss_weights(snr, 5.0, 20.0)
    torch.testing.assert_close(boosted / plain, torch.tensor([20.0, 1 / 0.09, 2.0, 1.0, 1.0, 1.0]))


def test_direction_contrast_hinge(tmp_path):
    """The --direction-contrast term: only clips whose caption names a constant motion take part;
    a UNet that ignores the text pays margin x its own error there, with a gradient only on what
    makes the prediction depend on the direction word; nothing once the reversed caption is
    already worse by the margin."""
    from types import SimpleNamespace

    import torch

    from recipes.shapes.tokenizer import build_tokenizer

    train = load_recipe("train_shapes_backbone.py")
    tok = build_tokenizer(world.vocabulary(), tmp_path / "tok", max_length=24)
    right = tok.convert_tokens_to_ids("right</w>")

    def text_encoder(ids):  # a feature that tells "right" from every other word
        return ((ids == right).float()[..., None].expand(-1, -1, 8),)

    class FakeUNet(torch.nn.Module):
        def __init__(self, direction_gain: float) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(1.0))
            self.direction_gain = torch.nn.Parameter(torch.tensor(direction_gain))

        def forward(self, x, t, encoder_hidden_states):
            says_right = encoder_hidden_states.amax(dim=(1, 2))[:, None, None, None, None]
            return SimpleNamespace(sample=self.scale * x + self.direction_gain * says_right)

    torch.manual_seed(0)
    noisy = torch.randn(3, 4, 16, 2, 2)
    noise = noisy + 0.1 * torch.randn_like(noisy)
    t = torch.tensor([999, 500, 100])
    weight = torch.tensor([1.0, 0.5, 0.25])
    captions = ["a red circle moving left", "a red circle standing still", ""]
    emb = text_encoder(tok(captions, padding="max_length", max_length=24, return_tensors="pt").input_ids)[0]
    blind = FakeUNet(0.0)
    per_item = ((blind(noisy, t, emb).sample - noise) ** 2).mean(dim=(1, 2, 3, 4))
    loss = train.direction_contrast_loss(blind, text_encoder, tok, noisy, t, noise, captions, per_item, weight, 0.2)
    torch.testing.assert_close(loss, 0.2 * per_item[0].detach() * weight[0] / 3)
    loss.backward()
    assert blind.direction_gain.grad.abs() > 0  # the direction pathway is pushed ...
    assert blind.scale.grad == 0  # ... and what serves both captions alike is not
    # the reversed caption ("... moving right") now costs far more than the margin
    seeing = FakeUNet(1.0)
    per_item = ((seeing(noisy, t, emb).sample - noise) ** 2).mean(dim=(1, 2, 3, 4))
    assert (
        train.direction_contrast_loss(seeing, text_encoder, tok, noisy, t, noise, captions, per_item, weight, 0.2) == 0
    )
    # no motion named anywhere: nothing to contrast
    still = ["a red circle standing still", "a blue square bouncing up and down", ""]
    assert train.direction_contrast_loss(blind, text_encoder, tok, noisy, t, noise, still, per_item, weight, 0.2) == 0


def test_direction_toy_clips_move_the_way_their_word_says():
    """The toy's ground truth: each clip's blob travels along its direction word's axis, the
    right way, and not across it."""
    import torch

    toy = load_recipe("direction_toy.py")
    clips, direction, _ = toy.make_batch(torch.Generator().manual_seed(0), 256)
    assert clips.shape == (256, toy.CHANNELS, toy.FRAMES, toy.CELLS, toy.CELLS)
    assert 0.8 < clips.std() < 1.2  # unit-variance latents, as the schedule assumes
    grid = torch.arange(toy.CELLS, dtype=torch.float32)
    blob = clips[:, 0].clamp(min=1.5) - 1.5  # channel 0 carries the blob, above the texture
    mass = blob.sum(dim=(2, 3))
    x, y = (blob * grid).sum(dim=(2, 3)) / mass, (blob * grid[:, None]).sum(dim=(2, 3)) / mass
    for k, (dx, dy) in enumerate(toy.DIRECTIONS.values()):
        pick = direction == k
        move_x, move_y = (x[pick, -1] - x[pick, 0]).median(), (y[pick, -1] - y[pick, 0]).median()
        assert move_x * dx + move_y * dy > 2, (k, move_x, move_y)  # about 3 cells along the word's axis
        assert (move_y if dx else move_x).abs() < 0.5, (k, move_x, move_y)  # and not across it


def test_direction_toy_colour_blobs_keep_the_paths_and_name_the_colour():
    """--colour-blobs: the same blobs and textures as the plain toy, each in its drawn colour's
    latent vector, and the caption names that colour."""
    import torch

    from recipes.shapes import world

    toy = load_recipe("direction_toy.py")
    colours = toy.colour_vectors()
    assert colours.shape == (len(world.OBJECT_COLOURS), toy.CHANNELS)
    assert torch.allclose(colours.norm(dim=1), torch.tensor(toy.BLOB_COLOUR).norm())
    shared = toy.colour_vectors(shared_channel=True)  # --shared-channel: channel 0 is the plain blob's for every colour
    assert torch.allclose(shared.norm(dim=1), colours.norm(dim=1)) and (shared[:, 0] == toy.BLOB_COLOUR[0]).all()
    plain, direction, index = toy.make_batch(torch.Generator().manual_seed(2), 64)
    coloured, direction2, index2 = toy.make_batch(torch.Generator().manual_seed(2), 64, colours)
    assert torch.equal(direction, direction2) and (index == 0).all() and len(index2.unique()) > 3
    # clip = texture + colour * blob: unmixing with the known colours gives the same texture and blob
    blob = (plain - coloured) / (
        torch.tensor(toy.BLOB_COLOUR)[:, None, None, None] - colours[index2][:, :, None, None, None]
    )
    assert torch.allclose(blob[:, 0], blob[:, 1], atol=1e-3) and blob.min() > -1e-3 and blob.max() < 1 + 1e-3
    rng = torch.Generator().manual_seed(0)
    for name in world.OBJECT_COLOURS:
        assert f" {name} " in toy.random_caption(rng, "up", name)


def test_direction_toy_colour_score_tells_the_asked_colour_from_the_others():
    """The colour column's measure: clean clips score well above 0 for their own colour, the same
    clips with the colour labels shifted score below 0, and a colourless (texture only) clip about 0."""
    import torch

    toy = load_recipe("direction_toy.py")
    colours = toy.colour_vectors()[:3]  # --colours 3
    clips, _, index = toy.make_batch(torch.Generator().manual_seed(4), 256, colours)
    assert index.max() < 3
    exact = toy.colour_score(clips, index, colours)
    assert exact > 0.1
    assert toy.colour_score(clips, (index + 1) % 3, colours) < 0
    plain, _, _ = toy.make_batch(torch.Generator().manual_seed(4), 256, torch.zeros(3, toy.CHANNELS))
    assert abs(toy.colour_score(plain, index, colours)) < 0.1 * exact


def test_direction_toy_captions_are_world_captions_naming_the_clips_direction():
    """--text captions: each clip gets a caption in the world's words whose only motion phrase is
    its own direction, encoded by the shipped frozen text encoder at 24 tokens; the direction
    word changes the encoding, as it does for the real backbone."""
    import re

    import torch

    from recipes.shapes.world import vocabulary

    toy = load_recipe("direction_toy.py")
    rng = torch.Generator().manual_seed(0)
    words = set(vocabulary())
    for name in toy.DIRECTIONS:
        for _ in range(20):
            caption = toy.random_caption(rng, name)
            assert set(caption.split()) <= words, caption
            assert re.findall(r"moving (\w+)", caption) == [name], caption
    text = toy.CaptionText("shapes", 24, seed=0)
    emb = text[torch.tensor([0, 1, 2, 3])]
    assert emb.shape == (4, 24, toy.WIDTH) and emb.dtype == torch.float32
    text.rng.manual_seed(5)
    right = text[torch.tensor([0])]
    text.rng.manual_seed(5)
    left = text[torch.tensor([1])]  # same random words, the other direction
    assert (right - left).abs().max() > 0.1
    fixed = toy.CaptionText("shapes", 24, seed=0, fixed=True)
    emb = fixed[torch.tensor([0, 0, 1])]
    assert torch.equal(emb[0], emb[1]) and not torch.equal(emb[0], emb[2])  # one caption per direction
    assert not any(q.requires_grad for q in text.encoder.parameters())  # frozen unless asked
    trained = toy.CaptionText("shapes", 24, seed=0, trainable=True)
    trained[torch.tensor([0, 1])].pow(2).mean().backward()
    assert all(q.grad is not None for q in trained.encoder.parameters() if q.requires_grad)
    assert sum(q.grad.abs().sum() for q in trained.encoder.parameters()) > 0


def test_direction_toy_motion_share_refresh_raises_the_direction_share():
    """--motion-share: the toy refreshes the caption encoder as the real recipe does, with most of
    the end positions' summary on the motion words; the mean-pooled encoding then says more
    about the direction than the shipped encoder's (0.07), and the encoder is frozen again."""
    import torch

    toy = load_recipe("direction_toy.py")
    text = toy.CaptionText(str(toy.fresh_text_encoder()), 24, seed=0)  # not yet refreshed or scaled
    before = text.direction_share(count=128)
    assert 0 < before < 0.15
    text.refresh(0.8, steps=40, seed=0, distill_weight=0.0)
    assert text.direction_share(count=128) > before + 0.05
    assert not any(q.requires_grad for q in text.encoder.parameters())
    assert text[torch.tensor([0, 1])].shape == (2, 24, toy.WIDTH)


def test_direction_toy_saves_what_the_training_recipe_starts_from(tmp_path):
    """--save writes the toy's UNet and its frozen encoder with the output scale folded into the
    weights; the training recipe's --text-encoder-from / --unet-from path loads them into the
    shapes model's own components and gets the same text outputs and the same UNet."""
    import torch

    from recipes.shapes import components as shapes_model

    toy = load_recipe("direction_toy.py")
    train = load_recipe("train_shapes_backbone.py")
    text = toy.CaptionText(str(toy.fresh_text_encoder()), 24, seed=0, scale=2.5)
    torch.manual_seed(0)
    unet = toy.make_unet("unet3d")
    toy.save_for_training(tmp_path / "toy.pt", unet, text, step=7)
    state = torch.load(tmp_path / "toy.pt")
    assert state["text_frozen"] and state["step"] == 7 and not list(tmp_path.glob("*.tmp"))  # written atomically
    tokenizer = shapes_model.make_tokenizer(tmp_path / "tokenizer", 24)
    encoder = shapes_model.make_text_encoder(tokenizer).eval()
    encoder.load_state_dict(train.truncate_positions(state["ema_text"], 24))
    captions = ["a red circle moving right", "a small blue square moving up on a navy background"]
    ids = tokenizer(captions, padding="max_length", max_length=24, return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(encoder(ids)[0], text.encode(captions), rtol=1e-4, atol=1e-4)
        assert text.encode(captions).norm(dim=-1).mean() > 2 * 9  # the scale is in (norm about 9.4 unscaled)
    real = shapes_model.make_unet()
    real.load_state_dict(state["ema_unet"])
    assert all(torch.equal(a, b) for a, b in zip(real.state_dict().values(), unet.state_dict().values()))


@pytest.mark.parametrize(
    "script, args",
    [
        ("direction_toy.py", ["--save", "x.pt"]),  # needs --text captions
        ("direction_toy.py", ["--text-scale", "2"]),  # needs --text captions
        ("direction_toy.py", ["--text", "captions", "--motion-share", "1.5"]),
        ("train_shapes_backbone.py", ["--text-scale", "2"]),  # no refresh to act on
        ("train_shapes_backbone.py", ["--text-motion-share", "1", "--freeze-text-from", "10"]),
        ("train_shapes_backbone.py", ["--mover-fraction", "1.5"]),
        ("direction_toy.py", ["--colours", "3"]),  # needs --colour-blobs
        ("direction_toy.py", ["--text", "captions", "--colour-blobs", "--colours", "1"]),
        ("direction_toy.py", ["--text", "captions", "--colour-share", "0.3"]),  # needs --motion-share
        ("direction_toy.py", ["--text", "captions", "--motion-share", "0.6", "--colour-share", "0.4"]),  # adds up to 1
        ("train_shapes_backbone.py", ["--text-colour-share", "0.3"]),  # no refresh to act on
        ("train_shapes_backbone.py", ["--one-colour", "white"]),  # needs --one-colour-until
        ("train_shapes_backbone.py", ["--one-colour", "purple", "--one-colour-until", "10"]),  # not a world colour
        (
            "train_shapes_backbone.py",
            ["--text-motion-share", "0.7", "--text-colour-share", "0.3", "--freeze-text-from", "10"],
        ),
    ],
)
def test_recipes_reject_options_that_do_not_apply(tmp_path, script, args, capsys):
    module = load_recipe(script)
    tail = ["--out", str(tmp_path / "run")] if script.startswith("train") else ["--steps", "0"]
    with pytest.raises(SystemExit) as exit_info:
        module.main([*args, *tail])
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


def test_direction_toy_shared_keys_keep_only_the_direction_token_apart():
    import torch

    toy = load_recipe("direction_toy.py")
    words = 10 * torch.nn.functional.normalize(torch.randn(4, 1, toy.WIDTH), dim=-1)
    text = toy.behind_shared_keys(words)
    assert text.shape == (4, 24, toy.WIDTH)
    assert torch.equal(text[:, -1:], words)  # the direction tokens, last
    assert torch.equal(text[0, :-1], text[3, :-1])  # the rest is the same for every direction
    torch.testing.assert_close(text.norm(dim=-1), torch.full((4, 24), 10.0))
    assert toy.behind_shared_keys(words, 3).shape == (4, 4, toy.WIDTH)  # --shared-keys 3


def test_direction_toy_pool_clips_and_alignment_readout(tmp_path):
    """--pool: only one-object constant-motion clips are kept; a clip played backwards gets the
    opposite direction and the reversed caption; the alignment readout gives 1.0 to an x0
    estimate that is each word's mean clip and 0 to one that ignores the word."""
    from types import SimpleNamespace

    import torch
    from diffusers import DDPMScheduler

    from recipes.shapes.components import MODELSCOPE_SCHEDULER_CONFIG

    toy = load_recipe("direction_toy.py")
    captions = [
        "a red circle moving right",
        "a blue square moving left",
        "a red circle moving down",
        "a red circle moving up",
        "a red circle bouncing up and down",
        "a red circle moving right and a blue square moving up",
    ]
    latents = torch.randn(len(captions), 4, toy.FRAMES, 8, 8)
    torch.save({"latents": latents, "captions": captions, "count": 6, "capacity": 6}, tmp_path / "pool.pt")
    pool = toy.PoolClips(str(tmp_path / "pool.pt"))
    assert pool.captions == captions[:4] and pool.direction.tolist() == [0, 1, 2, 3]
    assert pool.object_words == {}  # a pool saved without a colour tag holds the full world
    torch.save(
        {"latents": latents, "captions": captions, "count": 6, "capacity": 6, "one_colour": "white"},
        tmp_path / "white.pt",
    )
    assert toy.PoolClips(str(tmp_path / "white.pt")).object_words == {"colour": "white"}  # the readout asks for white
    torch.save(
        {
            "latents": latents,
            "captions": captions,
            "count": 6,
            "capacity": 6,
            "object_words": {"colour": "white", "shape": "circle", "size": "large"},
        },
        tmp_path / "narrow.pt",
    )
    assert toy.PoolClips(str(tmp_path / "narrow.pt")).object_words == {
        "colour": "white",
        "shape": "circle",
        "size": "large",
    }
    rng = torch.Generator().manual_seed(0)
    for _ in range(20):
        text = toy.random_caption(rng, "left", colour="white", shape="circle", size="large")
        assert text.endswith(("white circle moving left", "background")) and " white circle moving left" in text
        assert "small" not in text
    torch.testing.assert_close(pool.means[0], (latents[0] + latents[1].flip(1)) / 2)  # right: its own + left reversed
    clips, direction, texts = pool.batch(torch.Generator().manual_seed(0), 64)
    for clip, d, text in zip(clips, direction.tolist(), texts):
        source = next(i for i in range(4) if torch.equal(clip, latents[i]) or torch.equal(clip, latents[i].flip(1)))
        backwards = not torch.equal(clip, latents[source])
        assert d == (toy.OPPOSITE[source] if backwards else source)
        assert text.endswith(f"moving {list(toy.DIRECTIONS)[d]}")

    scheduler = DDPMScheduler(**{k: v for k, v in MODELSCOPE_SCHEDULER_CONFIG.items() if k != "set_alpha_to_one"})
    abar = scheduler.alphas_cumprod[999]
    words = torch.eye(4)[:, None, :]  # one-hot tokens

    def unet(knows_word: bool):
        def call(z, t, encoder_hidden_states):
            k = encoder_hidden_states[:, 0].argmax(1) if knows_word else torch.zeros(len(z), dtype=torch.long)
            eps = (z - abar.sqrt() * pool.means[k]) / (1 - abar).sqrt()  # its x0 estimate is exactly means[k]
            return SimpleNamespace(sample=eps)

        return call

    exact = toy.alignment(unet(True), scheduler, words, pool.means)
    assert all(abs(v - 1.0) < 1e-4 for v in exact.values()), exact
    blind = toy.alignment(unet(False), scheduler, words, pool.means)
    assert all(abs(v) < 1e-4 for v in blind.values()), blind


def test_latent_pool_is_a_ring_buffer():
    import torch

    pool_module = load_recipe("pool.py")
    cpu = torch.device("cpu")

    def tokenize(captions):
        return torch.tensor([[ord(c[0])] for c in captions])

    def add(pool, values, captions):
        latents = torch.tensor(values)[:, None]
        pool.add(latents, torch.zeros_like(latents), captions, tokenize)

    pool = pool_module.LatentPool(3, cpu)
    add(pool, [0.0, 1.0], ["a", "b"])
    assert len(pool) == 2
    add(pool, [2.0, 3.0], ["c", "d"])  # "d" replaces the oldest, "a"
    assert len(pool) == 3 and pool.count == 4
    assert pool.captions == ["d", "b", "c"] and pool.latents[:, 0].tolist() == [3.0, 1.0, 2.0]
    assert pool.ids[:, 0].tolist() == [ord("d"), ord("b"), ord("c")]
    clone = pool_module.LatentPool(1, cpu)
    assert clone.load_state_dict(pool.state_dict(), tokenize)
    assert clone.captions == pool.captions and clone.count == 4 and len(clone) == 3


def test_text_refresh_parts_faded_words_and_keeps_the_rest(tmp_path):
    """The training recipe's text-encoder refresh: a word whose output has faded into another's
    ("left" made a near copy of "right") comes out clearly apart, while the other words' outputs
    stay close to what the UNet was trained on."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from recipes.shapes.tokenizer import build_tokenizer

    train = load_recipe("train_shapes_backbone.py")
    tok = build_tokenizer(world.vocabulary(), tmp_path / "tok")
    torch.manual_seed(0)
    encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    )
    right, left = tok.convert_tokens_to_ids(["right</w>", "left</w>"])
    with torch.no_grad():
        table = encoder.get_input_embeddings().weight
        table.mul_(50)  # words clearly apart, as in an encoder already trained on the captions
        table[left] = table[right] + 1e-4 * torch.randn_like(table[right])
    probe = ["a red circle moving right", "a red circle moving left", "a blue circle moving right"]

    def outputs(model) -> torch.Tensor:
        ids = tok(probe, padding="max_length", max_length=77, return_tensors="pt").input_ids
        with torch.no_grad():
            return model(ids)[0][:, [1, 2, 3, 4, 5, 6, 20]]  # the five words, the end token, a pad

    before = outputs(encoder)
    direction_gap = lambda h: (h[1, 4] - h[0, 4]).norm() / h[0, 4].norm()  # noqa: E731
    assert direction_gap(before) < 0.01
    pad_gap = lambda h: ((h[1, 5:] - h[0, 5:]).norm(dim=-1) / h[0, 5:].norm(dim=-1)).min()  # noqa: E731
    assert pad_gap(before) < 0.01
    captions = [world.make_clip(seed, frames=1).caption for seed in range(300)]
    stats = train.refresh_text_encoder(encoder, tok, captions, steps=200, seed=0, log_every=1000)
    after = outputs(encoder)
    assert direction_gap(after) > 0.3, direction_gap(after)
    assert stats["identity"] < 0.5 and stats["summary"] < 2.6 and stats["distill"] < 0.5, stats
    assert pad_gap(after) > 0.1, pad_gap(after)  # the end and padding positions now tell left from right
    # words that were already apart stay near their old outputs
    kept = (after[2, :3] - before[2, :3]).norm(dim=-1) / before[2, :3].norm(dim=-1)
    assert kept.max() < 0.5, kept
    assert not any(p.requires_grad for p in encoder.parameters())  # handed back frozen


def test_probe_text_use(tiny_model_dir, tiny_backbone, monkeypatch):
    """The probe reads 0 for a word the model cannot see, and more than 0 for one it can."""
    import torch

    probe = load_recipe("probe_text_use.py")
    assert (
        world.reversed_caption("a red circle moving up on a gray background")
        == "a red circle moving down on a gray background"
    )
    assert probe.swap_colour("a small red circle moving up") == "a small green circle moving up"
    encode = tiny_backbone.encode_text
    import re

    monkeypatch.setattr(tiny_backbone, "encode_text", lambda text: encode(re.sub(r"moving \w+", "moving", text)))
    monkeypatch.setattr(tiny_backbone, "_text_cache", {})
    clips = world.moving_object_clips(3, 5_000, frames=tiny_backbone.frames)
    rows = probe.probe(tiny_backbone, clips, timesteps=(700,))
    assert rows[0]["loss without direction"] == 0.0  # both captions encode alike: the direction is invisible
    assert rows[0]["loss without colour"] != 0.0 and rows[0]["loss without text"] != 0.0
    frame = torch.full((1, 3, 4, 4), 96 / 127.5 - 1)  # a grey frame with one red pixel
    frame[0, :, 1, 2] = torch.tensor([230, 40, 40]) / 127.5 - 1
    red = probe.colour_weight(frame, "red")[0]
    assert red[1, 2] > 0.5 and red.sum() - red[1, 2] < 0.1 * red[1, 2]  # the red pixel stands out
    assert probe.colour_weight(frame, "blue")[0, 1, 2] == 0.0  # and is no blue
    drift = probe.layout_drift(tiny_backbone, timesteps=(999,), samples=2)
    assert set(drift[0]) == {"t", *world.DIRECTIONS} and all(np.isfinite(v) for v in drift[0].values())
    shares = probe.text_shares(tiny_backbone, count=40)  # the arithmetic is checked in test_text_refresh.py
    assert set(shares) == {"direction", "colour", "shape"} and all(0 < v < 1 for v in shares.values()), shares
    run("probe_text_use.py", "--model", tiny_model_dir, "--clips", 2)


def test_narrow_pool_keeps_only_the_pinned_objects_and_writes_a_toy_pool(tmp_path):
    """recipes/narrow_pool.py: world draws kept by rejection (one object of the pinned colour, shape
    and size, a constant unbouncing motion, the background kind), encoded at the run's latent scaling
    in the pool format the direction toy reads, with the pinned words recorded."""
    import torch

    from recipes.shapes import components as shapes_model

    narrow = load_recipe("narrow_pool.py")
    plain = narrow.narrow_clips(4, 0, "white", "circle", "large", "plain", (1.5, 2.5))
    for clip in plain:
        (track,) = clip.tracks
        assert (track.spec.colour, track.spec.shape, track.spec.size) == ("white", "circle", "large")
        assert track.spec.direction is not None and not track.bounced
        assert (clip.background == clip.background[0, 0]).all()
    textured = narrow.narrow_clips(4, 0, "red", None, None, "texture", (1.5, 2.5))
    assert all(not (c.background == c.background[0, 0]).all() and c.tracks[0].spec.colour == "red" for c in textured)

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    vae = shapes_model.make_vae()
    torch.save({"model": vae.state_dict(), "step": 1, "scaling_factor": 0.5, "latent_mean": 0.0}, run_dir / "vae.pt")
    out = tmp_path / "pool.pt"
    run(
        "narrow_pool.py",
        "--run",
        run_dir,
        "--out",
        out,
        "--shape",
        "circle",
        "--size",
        "large",
        "--background",
        "plain",
        "--count",
        "3",
    )
    state = torch.load(out)
    assert state["latents"].shape == (3, 4, world.FRAMES, world.SIZE // 8, world.SIZE // 8)
    assert state["captions"] == [c.caption for c in plain[:3]]
    assert state["object_words"] == {"colour": "white", "shape": "circle", "size": "large"}
    expected = narrow.encode_video(vae.eval(), narrow.clips_video(plain[:1])) * 0.5
    torch.testing.assert_close(state["latents"][:1], expected, atol=1e-4, rtol=1e-4)
    pool = load_recipe("direction_toy.py").PoolClips(str(out))
    assert pool.object_words == state["object_words"] and len(pool.latents) == 3

    # misuse: an existing output, a run without a VAE; a usage error, nothing written
    for args in (["--run", run_dir, "--out", out], ["--run", tmp_path / "nowhere", "--out", tmp_path / "p2.pt"]):
        res = subprocess.run(
            [sys.executable, "-m", RECIPE_MODULES["narrow_pool.py"], *map(str, args)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=120,
        )
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "p2.pt").exists()


def test_shipped_model_uses_the_direction_word():
    """The shipped weights follow the motion word, not only the colour: on held-out one-object
    movers at t = 850 (where a sample's trajectory is still open), reversing the direction word
    raises the noise-prediction error by a sizeable part of what swapping the colour does, and
    the x0 estimate at t = 800 drifts each word's way. The step-4,742 preview read +0.00000 here
    (a model that ignores the word) and the same drift for all four words."""
    import vidzero

    probe = load_recipe("probe_text_use.py")
    backbone = vidzero.load_backbone("shapes", device="cpu")
    (row,) = probe.probe(backbone, world.moving_object_clips(8, 3_500_000_000), timesteps=(850,))
    assert row["loss without direction"] > 0.25 * row["loss without colour"] > 0, row
    (drift,) = probe.layout_drift(backbone, timesteps=(800,), samples=4)
    assert drift["right"] > drift["left"] + 4 and drift["down"] > drift["up"] + 4, drift  # pixels


def test_the_gpu_training_command_trains_and_exports_on_the_cpu(tmp_path):
    from recipes.gpu import train_shapes

    train_shapes.main(
        [
            "--cpu", "--minutes", "0.2", "--batch", "2", "--workers", "0", "--pool-start", "4",
            "--pool-refresh", "0", "--out", str(tmp_path / "run"), "--export", str(tmp_path / "model"),
        ]
    )  # fmt: skip
    import json

    assert json.loads((tmp_path / "model" / "training.json").read_text())["unet_steps"] > 0
    assert (tmp_path / "model" / "unet" / "config.json").exists()


def test_a_grown_unet_computes_what_the_one_it_grew_from_computes():
    import torch

    from recipes.shapes.components import grow_unet, make_unet

    torch.manual_seed(0)
    unet = make_unet()
    with torch.no_grad():  # no weight left at zero, so that every copied part matters
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    grown = grow_unet(unet, 2)
    assert grown.config.layers_per_block == 2
    assert sum(p.numel() for p in grown.parameters()) > 1.3 * sum(p.numel() for p in unet.parameters())
    x, t, text = torch.randn(2, 4, 16, 8, 8), torch.tensor([500, 20]), torch.randn(2, 24, 128)
    with torch.no_grad():
        before, after = unet.eval()(x, t, text).sample, grown.eval()(x, t, text).sample
    assert torch.equal(before, after)
    with torch.no_grad():  # and the new layers are trainable parts, not dead ones
        grown.down_blocks[0].resnets[1].conv2.weight.add_(0.1)
        assert not torch.equal(grown(x, t, text).sample, before)
