"""The shapes evaluator: ground truth scores perfect; shuffled, recoloured or wrong clips do not."""

from __future__ import annotations

import numpy as np
import pytest

from recipes.shapes import world
from recipes.shapes.judge import Expected, parse_caption, score_against_truth, score_clip, single_mover

pytestmark = pytest.mark.slow


def single_object_clips(n=30):
    clips, seed = [], 10**9
    while len(clips) < n:
        c = world.make_clip(seed)
        seed += 1
        if len(c.tracks) == 1 and c.tracks[0].spec.direction is not None and not c.tracks[0].bounced:
            clips.append(c)
    return clips


def test_ground_truth_clips_score_perfect():
    for clip in single_object_clips():
        r = score_against_truth(clip.frames, clip)
        assert r["present"] == 1.0 and r["colour_correct"] and r["direction_correct"] and r["shape_correct"]
        assert r["track_error"] < 1.0 and r["background_psnr"] > 40
        assert score_clip(clip.frames, clip.caption)["direction_correct"]  # from the caption alone


def test_shuffled_frames_lose_direction_and_track():
    rng = np.random.default_rng(0)
    wrong_dir = 0
    clips = single_object_clips()
    for clip in clips:
        shuffled = clip.frames[rng.permutation(len(clip.frames))]
        r = score_against_truth(shuffled, clip)
        assert r["track_error"] > 3.0
        wrong_dir += not r["direction_correct"]
    # the fitted slope of a shuffled track has a random sign: about half right by chance,
    # against 100 % on the true order
    assert wrong_dir >= 0.3 * len(clips)


def test_reversed_motion_is_the_wrong_direction():
    for clip in single_object_clips(10):
        assert not score_against_truth(clip.frames[::-1], clip)["direction_correct"]


def test_recoloured_object_is_the_wrong_colour():
    for clip in single_object_clips(10):
        spec = clip.tracks[0].spec
        other = "blue" if spec.colour != "blue" else "red"
        recoloured = world.make_clip(
            clip.seed,
            objects=[world.ObjectSpec(spec.shape, other, spec.size, spec.x, spec.y, spec.direction, spec.speed)],
        )
        r = score_against_truth(recoloured.frames, clip)
        assert not r["colour_correct"] and r["present"] == 0.0


def test_changed_background_is_detected():
    clip = single_object_clips(1)[0]
    other = world.make_clip(clip.seed + 12345)
    swapped = np.where(
        (clip.frames == clip.background[None]).all(-1, keepdims=True), other.background[None], clip.frames
    )
    assert score_against_truth(swapped.astype(np.uint8), clip)["background_psnr"] < 30


def test_noise_finds_nothing():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 140, (16, 64, 64, 3), dtype=np.uint8)  # background-like levels
    r = score_clip(noise, [Expected("red", "circle", "right")])
    assert r["present"] == 0.0 and not r["colour_correct"] and not r["direction_correct"]


@pytest.mark.parametrize(
    "caption,expected",
    [
        ("a large red circle moving right on a maroon background", [Expected("red", "circle", "right")]),
        ("an orange square standing still", [Expected("orange", "square", "still")]),
        (
            "a cyan triangle bouncing up and down and a blue square moving left",
            [Expected("cyan", "triangle", "down", axis_only=True), Expected("blue", "square", "left")],
        ),
    ],
)
def test_parse_caption(caption, expected):
    assert parse_caption(caption) == expected


@pytest.mark.parametrize(
    "caption,expected",
    [
        ("a small blue square moving up on a green background", Expected("blue", "square", "up")),
        ("an orange square standing still", None),
        ("a cyan triangle bouncing left and right", None),
        ("a red circle moving right and a blue square moving left", None),
        ("", None),
    ],
)
def test_single_mover(caption, expected):
    assert single_mover(caption) == expected
