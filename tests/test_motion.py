"""The moved-target builder (vidzero.core.motion) on synthetic motion with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from tests.synthetic import disc_frame, textured_background
from vidzero.core.motion import (
    Placed,
    centred_shift,
    consistent,
    find_object,
    mask_centre,
    moved_target,
    object_shift,
    optical_flow,
    painted_out,
)

FLAT = np.broadcast_to(np.array((26, 30, 78), np.uint8), (64, 64, 3)).copy()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.parametrize("background", ["flat", "texture"])
def test_the_object_is_the_region_that_differs_from_every_border_colour(background):
    bg = FLAT if background == "flat" else textured_background()
    frame, cover = disc_frame(bg, (30.3, 25.6), 7.5)
    mask = find_object(frame)
    assert mask is not None and iou(mask, cover > 0.5) >= 0.9
    np.testing.assert_allclose(mask_centre(mask), (30.3, 25.6), atol=0.25)
    assert find_object(bg) is None  # no object: nothing differs from the border


def test_a_point_picks_the_object_under_it_and_nothing_on_the_background():
    frame, left = disc_frame(FLAT, (16.0, 20.0), 5.0)
    frame, right = disc_frame(frame, (46.0, 40.0), 6.0, colour=(40, 200, 60))
    mask = find_object(frame, point=(46.0, 41.0))
    assert mask is not None and iou(mask, right > 0.5) >= 0.9 and not (mask & (left > 0.5)).any()
    assert find_object(frame, point=(5.0, 60.0)) is None
    assert find_object(frame, point=(200.0, 5.0)) is None  # off the image


def test_a_scene_filling_the_frame_is_no_object():
    frame, _ = disc_frame(FLAT, (32.0, 32.0), 29.5)
    assert find_object(frame) is None


@pytest.mark.parametrize("shift", [(3.4, -2.2), (-5.75, 0.5), (0.0, 0.0)])
def test_the_shift_of_a_moved_object_is_found_to_a_fraction_of_a_pixel(shift):
    bg = textured_background(seed=1)
    known, cover = disc_frame(bg, (30.0, 30.0), 6.5)
    moved, _ = disc_frame(bg, (30.0 + shift[0], 30.0 + shift[1]), 6.5)
    found = object_shift(known, cover > 0.5, moved)
    np.testing.assert_allclose(found.shift, shift, atol=0.2)
    assert found.rms < 20  # the edge pixels resample: far below a lost object (LOST_RMS)


def test_the_shift_onto_a_soft_redrawn_blob_lands_on_its_centre():
    """What a model draws: a softer, larger blob at the new place; the user's object is laid on
    its centre (near the guess, as the track predicts)."""
    known, cover = disc_frame(FLAT, (20.0, 32.0), 6.0)
    blob, _ = disc_frame(FLAT, (27.5, 32.0), 8.0, blur=1.5)
    found = object_shift(known, cover > 0.5, blob, guess=(6.0, 0.0), radius=4.0)
    np.testing.assert_allclose(found.shift, (7.5, 0.0), atol=1.5)  # somewhere on the blob: a plateau
    centred = centred_shift(known, cover > 0.5, blob, painted_out(known, cover > 0.5), found)
    np.testing.assert_allclose(centred.shift, (7.5, 0.0), atol=0.1)


def test_the_moved_target_keeps_the_users_outline_where_the_model_drew_a_blob():
    bg = textured_background(seed=2)
    known, cover = disc_frame(bg, (20.0, 30.0), 6.0)
    blob, blob_cover = disc_frame(bg, (26.0, 30.0), 8.5, blur=1.5)
    mask = cover > 0.5
    target = moved_target(known, blob, [Placed(known, mask, np.array([6.0, 0.0]))])
    expected, expected_cover = disc_frame(bg, (26.0, 30.0), 6.0)
    assert iou(target.object_mask > 0.5, expected_cover > 0.5) >= 0.9
    # the blob's rim outside the moved disc is background again (the user's background)
    rim = (blob_cover > 0.1) & (expected_cover == 0)
    assert rim.sum() > 20
    assert float(np.abs(target.image[rim].astype(int) - bg[rim].astype(int)).mean()) < 12
    assert float(np.abs(target.image.astype(int) - expected.astype(int)).mean()) < 4
    assert target.trust[expected_cover > 0.5].min() == pytest.approx(1.0, abs=0.05)


def test_with_no_object_the_known_frame_moves_by_the_consistent_flow():
    bg = textured_background(seed=3)
    panned = np.roll(bg, 2, axis=1)  # the camera pans: everything moves 2 px right
    target = moved_target(bg, panned, [])
    inner = (slice(8, -8), slice(8, -8))
    assert float(np.abs(target.image[inner].astype(int) - panned[inner].astype(int)).mean()) < 3
    assert float(target.trust[inner].mean()) > 0.9 and float(target.object_mask.max()) == 0.0


def test_the_forward_backward_check_flags_what_only_one_frame_shows():
    a, _ = disc_frame(textured_background(seed=4), (20.0, 32.0), 7.0)
    b, _ = disc_frame(textured_background(seed=4), (36.0, 32.0), 7.0)  # a large jump: uncovered and covered areas
    ok = consistent(optical_flow(a, b), optical_flow(b, a))
    assert ok[:4].mean() > 0.9  # the untouched background
    assert ok.mean() < 1.0


def test_painting_out_the_object_leaves_the_background():
    bg = textured_background(seed=5)
    frame, cover = disc_frame(bg, (32.0, 32.0), 6.0)
    clean = painted_out(frame, cover > 0.01)
    assert float(np.abs(clean.astype(int) - bg.astype(int))[cover > 0.5].mean()) < 10


# ---------------------------------------------------------------------- in a run (vidzero.core.targets)
def moving_targets(target: str, frames: str = "model", paths=()):
    from vidzero.core.sampler import SamplerSettings
    from vidzero.core.targets import MovingTargets
    from vidzero.core.timeline import Layout

    known, cover = disc_frame(textured_background(seed=6), (20.0, 30.0), 6.0)
    layout = Layout(8, {0: known}, [], "x", paths=tuple(paths))
    settings = SamplerSettings(target=target, target_frames=frames)
    return MovingTargets(layout, None, settings, layout.paths), known, cover  # type: ignore[arg-type]


def test_the_queue_reads_the_users_object_where_the_model_drew_its_blob():
    targets, _, _ = moving_targets("queue")
    bg = textured_background(seed=6)
    before, _ = disc_frame(bg, (21.5, 30.0), 8.0, blur=1.5)
    blob, _ = disc_frame(bg, (23.0, 30.0), 8.5, blur=1.5)
    queued, written = targets.queued(2, blob, before)
    assert written is blob  # the model's frame is written
    expected, expected_cover = disc_frame(bg, (23.0, 30.0), 6.0)
    inside = expected_cover > 0.5
    assert float(np.abs(queued[inside].astype(int) - expected[inside].astype(int)).mean()) < 6
    found = find_object(queued)
    assert found is not None and iou(found, expected_cover > 0.5) >= 0.85


def test_written_targets_and_lost_objects():
    targets, known, _ = moving_targets("off", frames="target")
    bg = textured_background(seed=6)
    blob, _ = disc_frame(bg, (23.0, 30.0), 8.5, blur=1.5)
    queued, written = targets.queued(1, blob, known)
    assert queued is blob and written is not blob  # the target is written, the queue reads the model's
    gone = bg.copy()  # the object left the frame: no target, the model's frame everywhere
    queued, written = moving_targets("both", frames="target")[0].queued(1, gone, known)
    assert queued is gone and written is gone


def test_a_path_moves_its_object_whatever_the_model_drew():
    from vidzero.core.targets import ObjectPath

    _, known, cover = moving_targets("off")
    centres = {f: np.array([20.0 + 3 * f, 30.0]) for f in range(8)}
    targets, _, _ = moving_targets("off", paths=[ObjectPath(0, cover > 0.5, centres)])
    assert targets.in_window and targets.in_queue and targets.steps() == (0, 10)
    bg = textured_background(seed=6)
    queued, _ = targets.queued(2, bg, known)  # the model drew nothing: the object is where the path says
    found = find_object(queued)
    assert found is not None
    np.testing.assert_allclose(mask_centre(found), (26.0, 30.0), atol=0.3)


def test_the_centre_does_not_depend_on_where_the_search_started():
    """A first estimate that lags the drawing (as a search from the frame before does) must not
    pull the centre back: the region is recentred until it settles."""
    from vidzero.core.motion import Match

    bg = textured_background(seed=6)
    known, cover = disc_frame(bg, (20.0, 30.0), 6.0)
    blob, _ = disc_frame(bg, (26.3, 27.2), 9.0, blur=1.5)
    mask = cover > 0.5
    found = {
        tuple(centred_shift(known, mask, blob, painted_out(known, mask), Match(np.array(start), 1.0)).shift.round(3))
        for start in ((6.3, -2.8), (4.3, -2.8), (8.3, -2.8), (6.3, -0.8))
    }
    assert len(found) == 1
    np.testing.assert_allclose(next(iter(found)), (6.3, -2.8), atol=0.15)
