"""Motion paths (vidzero.core.paths): parsing, checks, where the object is in each frame."""

from __future__ import annotations

import numpy as np
import pytest

from vidzero.core.paths import check_path, fitted, parse_path, path_record, positions, read_path, read_paths
from vidzero.errors import BadInput


def test_text_and_lists_read_as_the_same_points():
    assert parse_path("12,30 40,30@15  40.5,50") == [(12.0, 30.0, None), (40.0, 30.0, 15), (40.5, 50.0, None)]
    assert read_path([(12, 30), (40, 30, 15), (40.5, 50)]) == parse_path("12,30 40,30@15 40.5,50")
    assert read_paths([[(1, 2), (3, 4)], [(5, 6), (7, 8)]]) == [parse_path("1,2 3,4"), parse_path("5,6 7,8")]
    assert read_paths("1,2 3,4") == read_paths(["1,2 3,4"]) == [parse_path("1,2 3,4")]
    assert path_record(parse_path("12,30 40,30@15")) == "12,30 40,30@15"


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "is empty"),
        ("12;30 40,30", "should look like X,Y"),
        ("12,30 40,30@x", "should look like X,Y"),
        ("12,30", "at least two points"),
        ("12,30 70,30", "off the 64x64 image"),
        ("12,30 40,30@9 50,30@5", "out of order"),
        ("12,30 40,30@40", "outside the path's frames 0..15"),
        ("12,30@3 40,30", "starts on frame 0"),
    ],
)
def test_bad_paths_are_one_line_naming_the_option(text, message):
    with pytest.raises(BadInput, match=message) as caught:
        check_path(parse_path(text), (64, 64), 0, 15)
    assert caught.value.for_cli().startswith("--path") or "--path" in caught.value.for_cli()


def test_bad_api_points():
    for value in ([(1, 2, 3, 4)], [(1, float("nan"))], [(1, 2, 2.5)], 7, []):
        with pytest.raises(BadInput):
            read_path(value)


def test_constant_speed_by_length_between_the_first_and_last_frame():
    where = positions(parse_path("10,20 40,20"), 0, 15)
    assert sorted(where) == list(range(16))
    np.testing.assert_allclose(where[0], (10, 20))
    np.testing.assert_allclose(where[15], (40, 20))
    np.testing.assert_allclose(where[5], (20, 20))  # 2 px per frame


def test_an_l_shaped_path_turns_its_corner_on_time():
    where = positions(parse_path("10,10 30,10 30,40"), 0, 10)  # 20 px then 30 px: 5 px per frame
    np.testing.assert_allclose(where[4], (30, 10))
    np.testing.assert_allclose(where[6], (30, 20))


def test_pins_set_the_pace_and_two_pins_at_one_place_are_a_stop():
    where = positions(parse_path("10,10 20,10@2 20,10@6 40,10"), 0, 10)  # go, wait, go
    np.testing.assert_allclose(where[1], (15, 10))
    for f in range(2, 7):
        np.testing.assert_allclose(where[f], (20, 10))
    np.testing.assert_allclose(where[8], (30, 10))
    early = positions(parse_path("10,10 20,10@4"), 0, 8)  # pinned before the last frame: it stays
    np.testing.assert_allclose(early[8], (20, 10))


def test_a_path_starting_later_counts_from_its_own_first_frame():
    where = positions(parse_path("0,0 10,0"), 5, 10)
    assert sorted(where) == list(range(5, 11))
    np.testing.assert_allclose(where[7], (4, 0))


def test_points_move_onto_the_models_frame_as_the_image_is_fitted():
    # 200x100 -> 64x64: a centred 100x100 crop, scaled by 0.64
    (x, y, f), (x2, y2, _) = fitted([(100, 50, None), (50, 0, 3)], (200, 100), (64, 64))
    assert (round(x, 3), round(y, 3), f) == (31.82, 31.82, None)
    assert round(x2, 3) == -0.18 and round(y2, 3) == -0.18  # the crop's corner


# ---------------------------------------------------------------------- in a run
def disc_image(tmp_path):
    from PIL import Image

    from tests.synthetic import disc_frame, textured_background

    frame, _ = disc_frame(textured_background(seed=9), (20.0, 30.0), 6.0)
    Image.fromarray(frame).save(tmp_path / "disc.png")
    return tmp_path / "disc.png", frame


def test_written_targets_put_the_object_exactly_on_the_path(tiny_backbone, tmp_path):
    import json

    import vidzero
    from vidzero.core.motion import find_object, mask_centre

    image, _ = disc_image(tmp_path)
    run = vidzero.extend(
        image,
        "x",
        frames=6,
        backbone=tiny_backbone,
        steps=2,
        progress=False,
        path=[(20, 30), (30, 25, 3), (35, 25)],
        target_frames="target",
    )
    run.save(tmp_path / "o.mp4")
    where = positions(parse_path("20,30 30,25@3 35,25"), 0, 5)
    for k, frame in enumerate(run.frames()):
        found = find_object(frame)
        assert found is not None, k
        np.testing.assert_allclose(mask_centre(found), where[k], atol=0.35)
    manifest = json.loads((tmp_path / "o.mp4.manifest.json").read_text())
    assert manifest["spec"]["inputs"]["path"] == ["20,30 30,25@3 35,25"] and manifest["spec"]["inputs"]["mask"] == []


def test_a_path_changes_the_fingerprint_and_a_mask_picks_the_object(tiny_backbone, tmp_path):
    import vidzero

    image, frame = disc_image(tmp_path)
    common = {"frames": 4, "backbone": tiny_backbone, "steps": 1, "progress": False}
    plain = vidzero.extend(image, "x", **common)
    moved = vidzero.extend(image, "x", path="20,30 30,30", **common)
    other = vidzero.extend(image, "x", path="20,30 31,30", **common)
    assert len({plain.fingerprint(), moved.fingerprint(), other.fingerprint()}) == 3
    square = np.zeros(frame.shape[:2], bool)
    square[26:35, 16:25] = True  # a mask the user drew: a square around the disc, not the disc itself
    masked = vidzero.extend(image, "x", path="20,30 30,30", mask=square, **common)
    from vidzero.media.images import fit_frame

    fitted_square = fit_frame(
        np.repeat(square[..., None] * np.uint8(255), 3, 2), tiny_backbone.width, tiny_backbone.height
    )
    assert np.array_equal(masked.layout.paths[0].mask, fitted_square[..., 0] > 127)
    assert masked.fingerprint() != moved.fingerprint()
