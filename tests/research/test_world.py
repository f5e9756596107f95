"""The shapes world: determinism, ground truth consistent with the pixels, the tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from recipes.shapes import world
from recipes.shapes.tokenizer import build_tokenizer

pytestmark = pytest.mark.slow


def test_clips_are_a_pure_function_of_the_seed():
    a, b, c = world.make_clip(123), world.make_clip(123), world.make_clip(124)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.caption == b.caption and a.ground_truth() == b.ground_truth()
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (world.FRAMES, world.SIZE, world.SIZE, 3) and a.frames.dtype == np.uint8


def test_ground_truth_centres_match_the_rendered_colour():
    checked = 0
    for seed in range(40):
        clip = world.make_clip(seed)
        for track in clip.tracks:
            colour = np.array(world.OBJECT_COLOURS[track.spec.colour])
            for t in (0, world.FRAMES - 1):
                others = [o for o in clip.tracks if o is not track]
                if any(
                    np.linalg.norm(o.centres[t] - track.centres[t]) < 1.25 * (o.spec.radius + track.spec.radius) + 2
                    for o in others
                ):
                    continue  # overlapping objects hide part of each other
                mask = np.abs(clip.frames[t].astype(int) - colour).sum(-1) < 30
                ys, xs = np.nonzero(mask)  # the two objects of a clip never share a colour
                assert abs(xs.mean() - track.centres[t, 0]) < 1.5
                assert abs(ys.mean() - track.centres[t, 1]) < 1.5
                checked += 1
    assert checked > 60


def test_motion_matches_the_caption():
    for seed in range(60):
        clip = world.make_clip(seed)
        for track in clip.tracks:
            d = track.centres[-1] - track.centres[0]
            word = track.spec.direction
            if word is None:
                assert "standing still" in clip.caption and np.allclose(d, 0)
            elif not track.bounced:
                assert f"moving {word}" in clip.caption
                dx, dy = world.DIRECTIONS[word]
                assert d[0] * dx + d[1] * dy > 10  # moved the way the caption says


def test_backgrounds_are_muted_and_objects_bright():
    for seed in range(30):
        clip = world.make_clip(seed)
        assert clip.background.max() <= 140
    for rgb in world.OBJECT_COLOURS.values():
        assert max(rgb) >= 200


def test_tokenizer_has_every_caption_word_as_one_token(tmp_path):
    tok = build_tokenizer(world.vocabulary(), tmp_path)
    captions = {world.make_clip(s).caption for s in range(200)}
    for caption in captions:
        ids = tok(caption).input_ids
        assert len(ids) == len(caption.split()) + 2  # BOS + words + EOS
    assert len(tok("zebra").input_ids) > 3  # unknown words still tokenize, as characters


def test_speed_range_sets_the_pace_and_keeps_the_clip_otherwise():
    """A training run can draw faster objects (--world-speed); the same seed keeps its object,
    direction and background, and every object stays inside the frame."""
    for seed in range(40):
        slow, fast = world.make_clip(seed), world.make_clip(seed, speed_range=(1.5, 2.5))
        a, b = slow.tracks[0].spec, fast.tracks[0].spec
        assert (a.shape, a.colour, a.size, a.direction) == (b.shape, b.colour, b.size, b.direction)
        np.testing.assert_array_equal(slow.background, fast.background)
        if a.direction is None:
            assert b.speed == 0.0
        else:
            assert 1.0 <= a.speed <= 2.0 and 1.5 <= b.speed <= 2.5
            assert b.speed - a.speed == pytest.approx(0.5)  # the same draw, moved along
        for track in fast.tracks:
            r = track.spec.radius
            assert track.centres.min() >= r - 1e-9 and track.centres.max() <= world.SIZE - 1 - r + 1e-9


def test_object_colours_narrow_the_draw_and_one_colour_means_one_object():
    clips = [world.make_clip(seed, object_colours=("white",)) for seed in range(40)]
    assert all(len(c.tracks) == 1 and c.tracks[0].spec.colour == "white" for c in clips)
    assert all(c.caption.startswith(("a white", "a small white", "a large white")) for c in clips)
    pair = [world.make_clip(seed, object_colours=("red", "blue")) for seed in range(60)]
    assert {t.spec.colour for c in pair for t in c.tracks} == {"red", "blue"}
    assert any(len(c.tracks) == 2 for c in pair)
    # the default draw is untouched by the option
    assert world.make_clip(7, object_colours=None).caption == world.make_clip(7).caption
    with pytest.raises(ValueError, match="no object colour"):
        world.random_object(np.random.default_rng(0), colours=("red",), exclude_colour="red")


def test_moving_object_clips_can_hold_one_colour():
    clips = world.moving_object_clips(5, 1_000, object_colours=("white",))
    assert all(
        c.tracks[0].spec.colour == "white" and c.tracks[0].spec.direction and not c.tracks[0].bounced for c in clips
    )
    assert [c.seed for c in world.moving_object_clips(3, 1_000)] == [
        c.seed for c in world.moving_object_clips(3, 1_000, object_colours=None)
    ]


def test_free_backgrounds_are_any_dark_colour_and_never_named():
    plain = [world.make_clip(k, appearance=True) for k in range(6)]
    same = [world.make_clip(k, appearance=True, free_background=0.0) for k in range(6)]
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(plain, same))  # 0: the world as it was
    free = [world.make_clip(k, appearance=True, free_background=1.0) for k in range(20)]
    named = {tuple(c) for c in world.BACKGROUND_COLOURS.values()}
    assert all(c.background_name is None and "background" not in c.caption for c in free)
    assert sum(tuple(c.background[0, 0]) not in named for c in free) >= 18
    assert all(c.background.max() <= 150 + 35 for c in free)  # dark, as the named ones (blobs add a little)
