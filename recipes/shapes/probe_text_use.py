"""How much does a shapes model's noise prediction use each word of the caption?

    python recipes/probe_text_use.py [--model shapes] [--clips 48]

Held-out one-object clips with a clear motion are VAE-encoded and noised at a few timesteps (the
same noise for every caption). The UNet predicts the noise with the true caption, with its
direction word swapped for the opposite one, with its colour word swapped for another colour,
and with the empty caption. The increase of the noise-prediction MSE over the true caption is
what the model loses without that word: a model that ignores the direction word shows 0 in the
direction column at every noise level, however well it draws colours. This diagnosed why the
first shipped model moved objects in directions unrelated to the text (see the model card).

A second table shows where the UNet's x0 estimate puts the object at high noise, per direction
word: the layout that a sample's direction is decided from (see layout_drift). A last line gives
how much of the text encoder's mean-pooled output each word kind explains (see text_shares): a
cross-attention that does not yet pick keys passes on about that mix.
"""

from __future__ import annotations

import argparse
import re

import numpy as np
import torch

import vidzero
from recipes.shapes import world
from recipes.shapes.judge import single_mover
from recipes.shapes.text_refresh import label_share
from vidzero.core.frames import from_pixels
from vidzero.core.schedule import predict_clean

TIMESTEPS = (999, 850, 700, 500)


def swap_colour(caption: str) -> str:
    colours = list(world.OBJECT_COLOURS)
    first = next(c for c in re.findall(r"[a-z]+", caption) if c in colours)
    other = colours[(colours.index(first) + 1) % len(colours)]
    return re.sub(rf"\b{first}\b", other, caption, count=1)


@torch.no_grad()
def probe(backbone, clips: list[world.ShapesClip], timesteps=TIMESTEPS, seed: int = 0) -> list[dict]:
    b, f = len(clips), clips[0].frames.shape[0]
    pixels = from_pixels(np.concatenate([c.frames for c in clips]))  # (B*F, 3, H, W), channels-last view
    pixels = torch.nn.functional.interpolate(pixels, size=(backbone.height, backbone.width), mode="area")
    latents = backbone.encode_frames(pixels).reshape(b, f, *backbone.latent_shape).permute(0, 2, 1, 3, 4)
    variants = {
        "true": [c.caption for c in clips],
        "direction swapped": [world.reversed_caption(c.caption) for c in clips],
        "colour swapped": [swap_colour(c.caption) for c in clips],
        "no text": [""] * len(clips),
    }
    embeddings = {k: torch.cat([backbone.encode_text(c) for c in caps]) for k, caps in variants.items()}
    rows = []
    for t in timesteps:
        gen = torch.Generator().manual_seed(seed * 1000 + t)
        noise = torch.randn(latents.shape, generator=gen).to(latents.device)
        tt = torch.full((b,), t, device=latents.device)
        noisy = backbone.scheduler.add_noise(latents, noise, tt).to(backbone.dtype)
        mse = {}
        for name, emb in embeddings.items():
            pred = torch.cat(
                [
                    backbone.unet(noisy[i : i + 8], tt[i : i + 8], encoder_hidden_states=emb[i : i + 8]).sample.float()
                    for i in range(0, b, 8)
                ]
            )
            mse[name] = (pred - noise).pow(2).mean().item()
        abar = backbone.scheduler.alphas_cumprod[t].item()
        rows.append(
            {
                "t": t,
                "snr": abar / (1 - abar),
                **{f"mse {k}": v for k, v in mse.items()},
                **{
                    f"loss without {k.split()[0]}": mse[k] - mse["true"]
                    for k in ("direction swapped", "colour swapped")
                },
                "loss without text": mse["no text"] - mse["true"],
            }
        )
    return rows


def colour_weight(pixels: torch.Tensor, colour: str) -> torch.Tensor:
    """(N, 3, H, W) pixels in [-1, 1] -> (N, H, W) how much more of `colour` a pixel shows than
    its frame's mean: the positive part of (pixel - frame mean) along (palette colour - grey).
    Unlike the evaluator's hard colour match, this also reads the faint, spread-out object of an
    x0 estimate at high noise (a blend of every place the object could be)."""
    axis = torch.tensor(world.OBJECT_COLOURS[colour], dtype=torch.float32) / 127.5 - 1
    axis = axis / axis.norm()
    excess = pixels.float() - pixels.float().mean(dim=(2, 3), keepdim=True)
    return torch.einsum("nchw,c->nhw", excess, axis).clamp(min=0)


@torch.no_grad()
def layout_drift(
    backbone, timesteps=(999, 900, 800), samples: int = 6, colour: str = "red", seed: int = 0
) -> list[dict]:
    """Where the x0 prediction puts the object over the window, per direction word.

    For "a large <colour> circle moving <d>" and `samples` shared noise draws, the UNet's x0 estimate
    at timestep t is decoded and the centroid of its excess of that colour (colour_weight) is tracked: the
    drift is its mean move (pixels) from the first 4 frames to the last 4. At high noise x_t shows
    no trajectory yet, so this is where the direction of a sample is decided. The mean clip of
    each word drifts about +-19 px on this measure (+-25 px at 1.5-2.5 px per frame): what a
    model that knows the direction exactly would show. One that ignores the word drifts alike for
    all four.
    """
    f = backbone.frames
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, *backbone.latent_shape[:1], f, *backbone.latent_shape[1:], generator=gen).to(
        backbone.device
    )
    z_in = z.to(backbone.dtype)
    ys, xs = torch.meshgrid(
        torch.arange(backbone.height, dtype=torch.float32),
        torch.arange(backbone.width, dtype=torch.float32),
        indexing="ij",
    )
    rows = []
    for t in timesteps:
        abar = backbone.scheduler.alphas_cumprod[t]
        steps = torch.full((samples,), t, device=z.device)
        row = {"t": t}
        for direction in world.DIRECTIONS:
            emb = backbone.encode_text(f"a large {colour} circle moving {direction}").expand(samples, -1, -1)
            eps = backbone.unet(z_in, steps, encoder_hidden_states=emb).sample.float()
            x0 = predict_clean(z, abar, eps)
            pixels = backbone.decode(x0.permute(0, 2, 1, 3, 4).reshape(samples * f, *backbone.latent_shape)).cpu()
            mass = colour_weight(pixels, colour).reshape(samples, f, backbone.height, backbone.width)
            total = mass.sum(dim=(2, 3)) + 1e-6
            centre_x, centre_y = (mass * xs).sum(dim=(2, 3)) / total, (mass * ys).sum(dim=(2, 3)) / total
            axis = centre_x if world.DIRECTIONS[direction][0] else centre_y
            row[direction] = (axis[:, -4:].mean() - axis[:, :4].mean()).item()
        rows.append(row)
    return rows


def text_shares(backbone, count: int = 512, seed_base: int = 3_500_000_000) -> dict[str, float]:
    """Share of the variance of the mean-pooled text encoding that the direction, colour and shape
    words explain, over the captions of held-out one-object clips with a constant motion."""
    captions, labels = [], {"direction": [], "colour": [], "shape": []}
    seed = seed_base
    while len(captions) < count:
        caption = world.make_clip(seed, frames=1).caption
        seed += 1
        mover = single_mover(caption)
        if mover is None:
            continue
        captions.append(caption)
        for kind, names in (
            ("direction", list(world.DIRECTIONS)),
            ("colour", list(world.OBJECT_COLOURS)),
            ("shape", list(world.SHAPES)),
        ):
            labels[kind].append(names.index(getattr(mover, kind)))
    return {
        kind: label_share(backbone.text_encoder, backbone.tokenizer, captions, torch.tensor(v))
        for kind, v in labels.items()
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shapes")
    p.add_argument("--device", default="auto")
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--seed-base", type=int, default=3_500_000_000, help="held-out world seeds")
    p.add_argument(
        "--colour",
        choices=tuple(world.OBJECT_COLOURS),
        default=None,
        help="probe clips whose object has this colour only (a model in its --one-colour phase)",
    )
    a = p.parse_args(argv)
    backbone = vidzero.load_backbone(a.model, device=a.device)
    rows = probe(
        backbone,
        world.moving_object_clips(
            a.clips, a.seed_base, frames=backbone.frames, object_colours=None if a.colour is None else (a.colour,)
        ),
    )
    print("| t | SNR | noise MSE (true caption) | + without direction | + without colour | + without any text |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['t']} | {r['snr']:.3f} | {r['mse true']:.5f} | {r['loss without direction']:+.5f} | "
            f"{r['loss without colour']:+.5f} | {r['loss without text']:+.5f} |"
        )
    layout_colour = a.colour or "red"
    print(
        f"\nHigh-noise layout: drift (px) of the x0 estimate's {layout_colour} object, "
        "first to last frames, along each word's axis"
    )
    print("| t | right (x) | left (x) | down (y) | up (y) |")
    print("|---|---|---|---|---|")
    for r in layout_drift(backbone, colour=layout_colour):
        print(f"| {r['t']} | {r['right']:+.1f} | {r['left']:+.1f} | {r['down']:+.1f} | {r['up']:+.1f} |")
    shares = text_shares(backbone)
    print(
        "\nShare of the mean-pooled text encoding's variance: " + ", ".join(f"{k} {v:.3f}" for k, v in shares.items())
    )


if __name__ == "__main__":
    main()
