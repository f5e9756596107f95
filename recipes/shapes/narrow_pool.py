"""A latent pool of a narrowed shapes world, for the direction toy's --pool.

    python recipes/narrow_pool.py --run checkpoints/shapes-one-colour --out /tmp/pool.pt \\
        --colour white --shape circle --size large --background plain --count 1500

The direction toy learns the direction word from soft blobs in 800 steps but not from a training
run's real VAE latents, even when every object is white (see the model card). This writes pools
of real latents that hold less of the world's variety, to find which part stops it: every clip
holds one object of the given colour, shape and size that moves in a constant direction without
bouncing, on a plain background, a texture, or either. Clips are the world's own draws, kept by
rejection, so everything not pinned keeps the world's odds. They are encoded by the run's
finished VAE at its latent scaling, in the training recipe's pool format (with the pinned words
recorded, so the toy's readout names them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rich.progress import Progress

from recipes.shapes import components as shapes_model
from recipes.shapes import world
from recipes.shapes.train import atomic_save, clips_video, encode_video

BACKGROUNDS = ("plain", "texture", "any")


def keeps(clip: world.ShapesClip, shape: str | None, size: str | None, background: str) -> bool:
    """Whether a one-object clip of the colour-narrowed world fits the other pins: a constant,
    unbouncing motion, the shape and size asked for, and the background kind."""
    track = clip.tracks[0]
    spec = track.spec
    if len(clip.tracks) != 1 or spec.direction is None or track.bounced:
        return False
    if (shape and spec.shape != shape) or (size and spec.size != size):
        return False
    plain = bool((clip.background == clip.background[0, 0]).all())  # textures vary; plain ones do not
    return background == "any" or plain == (background == "plain")


def narrow_clips(
    count: int,
    seed_base: int,
    colour: str,
    shape: str | None,
    size: str | None,
    background: str,
    speed_range: tuple[float, float],
) -> list[world.ShapesClip]:
    """The first `count` clips from `seed_base` on that `keeps` accepts (one object, `colour`)."""
    out, seed = [], seed_base
    while len(out) < count:
        clip = world.make_clip(seed, two_object_probability=0.0, speed_range=speed_range, object_colours=(colour,))
        seed += 1
        if keeps(clip, shape, size, background):
            out.append(clip)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a training run's folder (its finished vae.pt encodes the clips)")
    p.add_argument("--out", required=True, help="where to write the pool (.pt); must not exist")
    p.add_argument("--colour", choices=tuple(world.OBJECT_COLOURS), default="white")
    p.add_argument("--shape", choices=world.SHAPES, default=None, help="default: any shape")
    p.add_argument("--size", choices=tuple(world.SIZES), default=None, help="default: any size")
    p.add_argument("--background", choices=BACKGROUNDS, default="any")
    p.add_argument("--count", type=int, default=1500)
    p.add_argument("--seed-base", type=int, default=0)
    p.add_argument("--world-speed", default="1.5:2.5", help="object speed range, px per frame (lo:hi)")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.count < 1:
        p.error("--count must be at least 1")
    try:
        speed = tuple(float(v) for v in a.world_speed.split(":"))
        if len(speed) != 2 or not 0 < speed[0] <= speed[1]:
            raise ValueError
    except ValueError:
        p.error("--world-speed must be lo:hi with 0 < lo <= hi")
    vae_path = Path(a.run) / "vae.pt"
    if not vae_path.is_file():
        p.error(f"no vae.pt in {a.run}")
    if Path(a.out).exists():
        p.error(f"{a.out} exists; choose another --out")
    ckpt = torch.load(vae_path, map_location="cpu")
    if "scaling_factor" not in ckpt:
        p.error(f"{vae_path} has no latent scaling yet (its run has not started the UNet)")
    if a.threads:
        torch.set_num_threads(a.threads)
    vae = shapes_model.make_vae()
    vae.load_state_dict(ckpt["model"])
    vae.eval().requires_grad_(False)
    scale = round(ckpt["scaling_factor"], 5)  # as the training recipe registers it

    clips = narrow_clips(a.count, a.seed_base, a.colour, a.shape, a.size, a.background, speed)
    latents = []
    with Progress() as progress:
        task = progress.add_task("encoding", total=len(clips))
        for first in range(0, len(clips), 64):
            chunk = clips[first : first + 64]
            latents.append(encode_video(vae, clips_video(chunk)) * scale)
            progress.advance(task, len(chunk))
    pinned = {"colour": a.colour} | ({"shape": a.shape} if a.shape else {}) | ({"size": a.size} if a.size else {})
    state = {
        "latents": torch.cat(latents),
        "captions": [c.caption for c in clips],
        "count": len(clips),
        "capacity": len(clips),
        "object_words": pinned,
        "background": a.background,
    }
    atomic_save(state, Path(a.out))
    print(f"{len(clips)} clips ({pinned}, background {a.background}) -> {a.out}")


if __name__ == "__main__":
    main()
