"""Train the embedded "shapes" backbone: VAE, then UNet + text encoder on text only.

    python -m recipes.shapes.train --out build/shapes-train                # train / resume
    python -m recipes.shapes.train --out build/more --from-model vidzero/shapes/model   # continue the shipped model
    python -m recipes.shapes.train --out build/shapes-train --export vidzero/shapes/model

Like ModelScope T2V, the video model only ever sees (caption, clip) pairs: no image conditioning
is trained. Everything is deterministic from --seed. The UNet trains from a ring buffer of
VAE-encoded clips (clip k is world seed `seed * 10**7 + k`): --pool-start clips first, then
--pool-refresh new ones per step, replacing the oldest once --pool-size is reached; each drawn
clip is played backwards half the time (an exact augmentation: per-frame latents reverse with the
frames, and "moving left" becomes "moving right"). On 2 CPU cores encoding a batch of fresh clips
every step cost more than the UNet step itself. Noise, timesteps and draws come from a generator
seeded with (seed, step), so a resumed run draws exactly what it would have drawn. Checkpoints
(and the pool) are written atomically every --every steps and when --minutes runs out, so a run
killed at any moment loses at most --every steps. Uses CUDA when present.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from recipes.shapes import components as shapes_model
from recipes.shapes import world
from recipes.shapes.components import timestep_loss_weights
from recipes.shapes.judge import single_mover
from recipes.shapes.pool import TRAIN_SEED_BASE, ClipRecipe, ClipSource, LatentPool, object_weights, training_clip
from recipes.shapes.text_refresh import log, refresh_text_encoder, scale_text_output, shares_fit
from recipes.shapes.world import reversed_caption

FOCUS_TIMESTEPS = (600, 950)  # where the trajectory is decided (see draw_timesteps)


def make_clips(seed: int, step: int, batch: int) -> list[world.ShapesClip]:
    return [world.make_clip(seed * TRAIN_SEED_BASE + step * batch + i) for i in range(batch)]


def clips_video(clips: list[world.ShapesClip]) -> torch.Tensor:
    """(B, 3, F, H, W) pixels in [-1, 1], a channels-last view of the rendered frames. The memory
    layout reaches the VAE's CPU kernels (the encoded latents differ by up to ~1e-4 between
    layouts), so callers keep the layout the shipped weights were trained with."""
    video = torch.from_numpy(np.stack([c.frames for c in clips])).float() / 127.5 - 1
    return video.permute(0, 4, 1, 2, 3)


def clip_batch(seed: int, step: int, batch: int) -> tuple[torch.Tensor, list[str]]:
    """(B, 3, F, H, W) in [-1, 1] (contiguous) and captions, a pure function of (seed, step)."""
    clips = make_clips(seed, step, batch)
    return clips_video(clips).contiguous(), [c.caption for c in clips]


@torch.no_grad()
def encode_video(vae, video: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """(B, 3, F, H, W) pixels -> (B, C, F, h, w) posterior-mean latents (unscaled), `chunk`
    frames per VAE call."""
    b, _, f, h, w = video.shape
    frames = video.permute(0, 2, 1, 3, 4).reshape(b * f, 3, h, w)
    latents = torch.cat([vae.encode(x).latent_dist.mean for x in frames.split(chunk)])
    return latents.reshape(b, f, *latents.shape[1:]).permute(0, 2, 1, 3, 4)


def direction_contrast_loss(
    unet,
    text_encoder,
    tokenizer,
    noisy: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    captions: list[str],
    per_item: torch.Tensor,
    weight: torch.Tensor,
    margin: float,
) -> torch.Tensor:
    """A hinge that asks the noise prediction under the caption with its motion reversed
    ("moving right" -> "moving left") to be worse than under the true caption by `margin` times
    the true error, for every clip whose caption names a constant motion.

    Plain denoising gives the direction word a gradient only through a product of factors that
    all start near zero (attention to the word, a sense of frame position, their interaction), so
    a UNet can sit at "ignore the direction" for thousands of steps (see the model card). This
    term isolates the direction-dependent part of that gradient and scales it up. It cannot be
    met by degrading predictions in general: the same UNet must still denoise real clips that
    carry the reversed caption.
    """
    picked = [i for i, c in enumerate(captions) if c and reversed_caption(c) != c]
    if not picked:
        return per_item.new_zeros(())
    idx = torch.tensor(picked, device=noisy.device)
    ids = tokenizer(
        [reversed_caption(captions[i]) for i in picked],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(noisy.device)
    with torch.no_grad():
        emb = text_encoder(ids)[0]
    pred = unet(noisy[idx], t[idx], encoder_hidden_states=emb).sample
    swapped = F.mse_loss(pred.float(), noise[idx], reduction="none").mean(dim=(1, 2, 3, 4))
    true = per_item[idx]
    gap = swapped - true
    return (F.relu(margin * true.detach() - gap) * weight[idx]).sum() / len(captions)


def object_masks(clips: list[world.ShapesClip]) -> torch.Tensor:
    """(B, 1, F, H, W) 1 where an object covers the pixel (frame differs from its background)."""
    diff = np.stack([np.abs(c.frames.astype(np.int16) - c.background.astype(np.int16)).max(-1) > 8 for c in clips])
    return torch.from_numpy(diff).float()[:, None]


def draw_timesteps(
    gen: torch.Generator,
    batch: int,
    num_train_timesteps: int,
    focus_fraction: float = 0.0,
    focus_range: tuple[int, int] = FOCUS_TIMESTEPS,
) -> torch.Tensor:
    """Training timesteps: uniform, except that a `focus_fraction` of the batch is drawn from
    `focus_range` instead.

    Why a focus: whether an object goes left or right is decided while x_t shows only faint blobs
    (roughly t in 600-950 for this schedule). There the caption's direction word is the only clue
    to the trajectory, but under uniform draws and min-SNR weights those steps carry a small share
    of the gradient, and the UNet never started to use the word (see the model card). With
    `focus_fraction == 0` the draws are exactly those of a run without this option, so earlier
    runs stay reproducible.
    """
    t = torch.randint(0, num_train_timesteps, (batch,), generator=gen)
    if focus_fraction > 0:
        focused = torch.rand(batch, generator=gen) < focus_fraction
        t = torch.where(focused, torch.randint(focus_range[0], focus_range[1], (batch,), generator=gen), t)
    return t


def draw_clips(gen: torch.Generator, captions: list[str], batch: int, mover_fraction: float = 0.0) -> torch.Tensor:
    """Indices into the pool for one batch: uniform, except that `mover_fraction` of the batch is
    drawn from the clips whose caption names one object moving in one of the four directions.

    Why: the direction word can only be learned from those clips, and they are about half of the
    world's. Over them the direction explains 1.6 % of the clean latents' variance, half of what it
    does in the direction toy that learns it in 700 steps, so a uniform batch carries about a
    quarter of the toy's direction signal (see the model card). With `mover_fraction == 0`
    the draws are exactly those of a run without this option."""
    pick = torch.randint(0, len(captions), (batch,), generator=gen)
    if mover_fraction > 0:
        movers = torch.tensor([i for i, c in enumerate(captions) if single_mover(c) is not None], dtype=torch.long)
        if len(movers) == 0:
            return pick
        chosen = torch.rand(batch, generator=gen) < mover_fraction
        pick = torch.where(chosen, movers[torch.randint(0, len(movers), (batch,), generator=gen)], pick)
    return pick


def truncate_positions(text_state: dict[str, torch.Tensor], length: int) -> dict[str, torch.Tensor]:
    """A CLIP text encoder's weights for prompts padded to `length` tokens instead of more.

    CLIP's text attention is causal, so position i never sees later positions: keeping the first
    `length` position embeddings gives exactly the same outputs at positions 0..length-1. Shorter
    padding leaves fewer padding keys for the UNet's cross-attention to spread over."""
    out = dict(text_state)
    for key, value in text_state.items():
        if key.endswith("position_embedding.weight"):
            out[key] = value[:length].clone()
        elif key.endswith("position_ids"):
            out[key] = value[..., :length].clone()
    return out


def atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def plot_losses(history: dict[str, list[tuple[int, float]]], path: Path) -> None:
    """log10 of each stage's loss per step, raw and smoothed, as a PNG."""
    from vidzero.media.pictures import write_png
    from vidzero.quality.plot import Panel, line_chart

    panels = []
    for name, points in history.items():
        if not points:
            continue
        losses = np.log10(np.maximum([loss for _, loss in points], 1e-8))
        k = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(k) / k, mode="same")
        panels.append(
            Panel(
                f"{name} loss, log10 (x: step {points[0][0]}..{points[-1][0]})",
                {"raw": losses.tolist(), "smoothed": smooth.tolist()},
            )
        )
    if panels:
        write_png(path, line_chart(panels, "training"))


class Trainer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
        self.history_path = self.out / "loss_history.json"
        self.history: dict[str, list] = {"vae": [], "unet": []}
        if self.history_path.exists():
            self.history = json.loads(self.history_path.read_text())
        self.deadline = time.time() + args.minutes * 60 if args.minutes else math.inf
        if args.from_model is not None:
            from transformers import CLIPTokenizer

            self.tokenizer = CLIPTokenizer.from_pretrained(args.from_model / "tokenizer")
        else:
            self.tokenizer = shapes_model.make_tokenizer(self.out / "tokenizer", args.max_tokens)

    def out_of_time(self) -> bool:
        """--minutes spent, or a STOP file dropped into --out (stop cleanly at the next step)."""
        return time.time() >= self.deadline or (self.out / "STOP").exists()

    def save_history(self) -> None:
        tmp = self.history_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.history))
        os.replace(tmp, self.history_path)
        plot_losses(self.history, self.out / "loss.png")

    # ---------------------------------------------------------------- VAE
    def train_vae(self) -> None:
        a = self.args
        if a.from_model is not None:
            return  # the model's own VAE, unchanged
        torch.manual_seed(a.seed)
        vae = shapes_model.make_vae().to(self.device)
        opt = torch.optim.AdamW(vae.parameters(), lr=a.vae_lr, weight_decay=0.0)
        ckpt_path = self.out / "vae.pt"
        step = 0
        if ckpt_path.exists():
            ckpt = torch.load(ckpt_path, map_location=self.device)
            vae.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["opt"])
            step = ckpt["step"]
            log(f"vae: resumed at step {step}")
            if step >= a.vae_steps:
                # Done: leave the file alone. Rewriting it would drop the stored latent scaling
                # factor, which the UNet stage would then recompute from the current world.
                return
        vae.train()
        last_save = time.time()
        while step < a.vae_steps and not self.out_of_time():
            # Frames drawn from clips: a quarter of a clip's frames keeps batches diverse.
            clips = make_clips(a.seed + 1, step, a.vae_batch // 4)
            video = torch.cat([clips_video(clips), object_masks(clips)], dim=1)
            gen = torch.Generator().manual_seed(a.seed * 7919 + step)
            idx = torch.randint(0, world.FRAMES, (video.shape[0], 4), generator=gen)
            frames = torch.stack([video[b, :, idx[b]] for b in range(video.shape[0])])  # B,C,4,H,W
            frames = frames.permute(0, 2, 1, 3, 4).reshape(-1, 4, world.SIZE, world.SIZE).to(self.device)
            frames, mask = frames[:, :3], frames[:, 3:]
            # Objects cover ~3 % of the pixels but carry what matters (colour, shape, position):
            # weight them up, or the autoencoder settles for grey blobs on the mean background.
            weight = 1 + a.vae_object_weight * mask
            # Trained as a deterministic autoencoder on the posterior mean (the only thing vidzero
            # ever uses): sampling the posterior at its initial std of 1 drowned the latent
            # signal and stalled the first run. A small L2 keeps latents bounded instead of a KL.
            z = vae.encode(frames).latent_dist.mean
            recon = vae.decode(z).sample
            err = recon - frames
            rec = ((err.abs() + err.pow(2)) * weight).mean() / weight.mean()
            kl = z.pow(2).mean()
            loss = rec + a.vae_kl * kl
            for g in opt.param_groups:
                g["lr"] = a.vae_lr * min(1.0, (step + 1) / 100) * (0.5 + 0.5 * math.cos(math.pi * step / a.vae_steps))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            opt.step()
            step += 1
            self.history["vae"].append((step, rec.item()))
            if step % 25 == 0:
                log(f"vae step {step}/{a.vae_steps} rec {rec.item():.4f} latent l2 {kl.item():.3f}")
            if step % a.every == 0 or time.time() - last_save > 600:
                atomic_save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt_path)
                self.save_history()
                last_save = time.time()
        atomic_save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt_path)
        self.save_history()

    def load_vae(self, tuned_decoder: bool = True):
        """The run's VAE (trained here, or the --from-model one), with the fine-tuned decoder of
        --decoder-from or of this run's decoder stage when there is one."""
        vae = self._base_vae()
        source = self.args.decoder_from or self.out / "decoder.pt"
        if tuned_decoder and Path(source).exists():
            ckpt = torch.load(source, map_location="cpu")
            vae.load_state_dict(ckpt["decoder"], strict=False)
            log(f"vae: decoder fine-tuned for {ckpt['step']} steps ({source})")
        return vae.eval().requires_grad_(False).to(self.device)

    def _base_vae(self):
        if self.args.from_model is not None:
            from diffusers import AutoencoderKL

            return AutoencoderKL.from_pretrained(self.args.from_model, subfolder="vae", torch_dtype=torch.float32)
        vae = shapes_model.make_vae()
        ckpt = torch.load(self.out / "vae.pt", map_location="cpu")
        vae.load_state_dict(ckpt["model"])
        if ckpt["step"] < self.args.vae_steps:
            raise SystemExit("the VAE has not finished training")
        vae.eval().requires_grad_(False)
        if "scaling_factor" not in ckpt:
            # Scale latents to unit variance, as the scaling factor of SD/ModelScope VAEs does.
            video, _ = clip_batch(self.args.seed + 2, 0, 32)
            mean = encode_video(vae, video, chunk=64)
            ckpt["scaling_factor"] = float(1.0 / mean.std())
            ckpt["latent_mean"] = float(mean.mean())
            atomic_save(ckpt, self.out / "vae.pt")
        vae.register_to_config(scaling_factor=round(ckpt["scaling_factor"], 5))
        log(f"vae scaling factor {vae.config.scaling_factor} (latent mean {ckpt['latent_mean']:.3f})")
        return vae

    # ---------------------------------------------------------------- decoder fine-tuning
    def train_decoder(self) -> None:
        """Fine-tune the VAE's decoder alone on frames of the world (with --appearance, of the
        appearance world too). The encoder, and with it the latent space the UNet learns, stays
        as it is: only what the decoder draws from a latent gets sharper (shapes, sizes, edges)."""
        a = self.args
        if a.decoder_steps <= 0:
            return
        vae = self._base_vae().to(self.device)
        vae.requires_grad_(False)
        trained = [vae.decoder] + ([vae.post_quant_conv] if getattr(vae, "post_quant_conv", None) is not None else [])
        for module in trained:
            module.requires_grad_(True)
        params = [p for p in vae.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=a.decoder_lr, weight_decay=0.0)
        path, step = self.out / "decoder.pt", 0
        if path.exists():
            ckpt = torch.load(path, map_location=self.device)
            vae.load_state_dict(ckpt["decoder"], strict=False)
            opt.load_state_dict(ckpt["opt"])
            step = ckpt["step"]
            log(f"decoder: resumed at step {step}")

        def save() -> None:
            state = {k: v for k, v in vae.state_dict().items() if k.startswith(("decoder.", "post_quant_conv."))}
            atomic_save({"decoder": state, "opt": opt.state_dict(), "step": step}, path)
            self.save_history()

        self.history.setdefault("decoder", [])
        vae.decoder.train()
        last_save = time.time()
        while step < a.decoder_steps and not self.out_of_time():
            k0 = step * a.decoder_batch
            clips = [
                training_clip(ClipRecipe(a.seed + 5, a.world_speed, a.appearance), k0 + i)
                for i in range(a.decoder_batch)
            ]
            gen = torch.Generator().manual_seed(a.seed * 7907 + step)
            pick = torch.randint(0, world.FRAMES, (len(clips),), generator=gen).tolist()
            frames = torch.from_numpy(np.stack([c.frames[t] for c, t in zip(clips, pick)])).permute(0, 3, 1, 2)
            frames = (frames.float() / 127.5 - 1).to(self.device)
            mask = object_masks(clips)[torch.arange(len(clips)), :, pick].to(self.device)
            with torch.no_grad():
                z = vae.encode(frames).latent_dist.mean
            err = vae.decode(z).sample - frames
            weight = 1 + a.vae_object_weight * mask
            loss = ((err.abs() + err.pow(2)) * weight).mean() / weight.mean()
            for g in opt.param_groups:
                g["lr"] = a.decoder_lr * min(1.0, (step + 1) / 50)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            self.history["decoder"].append((step, loss.item()))
            if step % 25 == 0:
                log(f"decoder step {step}/{a.decoder_steps} loss {loss.item():.4f}")
            if step % a.every == 0 or time.time() - last_save > 600:
                save()
                last_save = time.time()
        save()

    # ---------------------------------------------------------------- UNet + text encoder
    def train_unet(self) -> None:
        a = self.args
        torch.manual_seed(a.seed + 3)
        vae = self.load_vae()
        unet = shapes_model.make_unet(a.layers_per_block).to(self.device)
        text_encoder = shapes_model.make_text_encoder(self.tokenizer).to(self.device)
        ema_unet = copy.deepcopy(unet).requires_grad_(False)
        ema_text = copy.deepcopy(text_encoder).requires_grad_(False)
        params = list(unet.parameters()) + list(text_encoder.parameters())
        opt = torch.optim.AdamW(params, lr=a.unet_lr, weight_decay=0.01)
        ckpt_path = self.out / "unet.pt"
        step = 0
        text_frozen = False
        if ckpt_path.exists():
            ckpt = torch.load(ckpt_path, map_location=self.device)
            text_frozen = ckpt.get("text_frozen", False)
            unet.load_state_dict(ckpt["unet"])
            text_encoder.load_state_dict(ckpt["text_encoder"])
            ema_unet.load_state_dict(ckpt["ema_unet"])
            ema_text.load_state_dict(ckpt["ema_text"])
            opt.load_state_dict(ckpt["opt"])
            step = ckpt["step"]
            log(f"unet: resumed at step {step}" + (" (text encoder frozen)" if text_frozen else ""))
        elif a.from_model is not None:
            # Continue a shipped model: its UNet (the EMA weights, stored in fp16) and its frozen
            # text encoder; fresh optimizer, step 0.
            from diffusers import UNet3DConditionModel
            from transformers import CLIPTextModel

            unet = UNet3DConditionModel.from_pretrained(a.from_model, subfolder="unet", torch_dtype=torch.float32).to(
                self.device
            )
            if a.layers_per_block != unet.config.layers_per_block:
                # deeper, computing exactly what the shipped UNet computes at step 0
                unet = shapes_model.grow_unet(unet.cpu(), a.layers_per_block).to(self.device)
                log(f"unet: grown to {a.layers_per_block} layers per block (new layers start as the identity)")
            text_encoder = CLIPTextModel.from_pretrained(a.from_model / "text_encoder", dtype=torch.float32).to(
                self.device
            )
            ema_unet = copy.deepcopy(unet).requires_grad_(False)
            ema_text = copy.deepcopy(text_encoder).requires_grad_(False)
            params = list(unet.parameters()) + list(text_encoder.parameters())
            opt = torch.optim.AdamW(params, lr=a.unet_lr, weight_decay=0.01)
            text_frozen = True
            log(f"unet: continuing the model in {a.from_model}")
        elif a.text_encoder_from is not None:
            # ModelScope's recipe: a fresh UNet learns from a text encoder that is ready and frozen
            # from its first step (here the refreshed encoder of an earlier run), instead of one
            # trained jointly, which let the direction words fade (see the model card).
            source = torch.load(a.text_encoder_from, map_location=self.device)
            if not source.get("text_frozen", False):
                raise SystemExit(f"{a.text_encoder_from} has no frozen (refreshed) text encoder")
            text_state = truncate_positions(source["ema_text"], self.tokenizer.model_max_length)
            text_encoder.load_state_dict(text_state)
            ema_text.load_state_dict(text_state)
            # with a motion share (or a text scale) the loaded encoder is refreshed (or scaled) once
            # more at step 0, below, before it freezes
            text_frozen = a.text_motion_share == 0 and a.text_colour_share == 0 and a.text_scale == 1
            log(f"unet: new, with the frozen text encoder of {a.text_encoder_from} (step {source['step']})")
            if a.unet_from is not None:
                # A warm start on a changed world: the earlier run's EMA UNet (objects, colours and
                # backgrounds already learned) with a fresh optimizer and a new step count.
                warm = torch.load(a.unet_from, map_location=self.device)["ema_unet"]
                unet.load_state_dict(warm)
                ema_unet.load_state_dict(warm)
                log(f"unet: starting from the EMA UNet of {a.unet_from}")
        scheduler = shapes_model.make_scheduler()
        abar = scheduler.alphas_cumprod.to(self.device)
        loss_weight = timestep_loss_weights(abar / (1 - abar), a.min_snr, a.high_noise_weight)
        sf = vae.config.scaling_factor
        unet.train()
        text_encoder.train()
        if text_frozen:
            text_encoder.eval().requires_grad_(False)

        def save() -> None:
            atomic_save(
                {
                    "unet": unet.state_dict(),
                    "text_encoder": text_encoder.state_dict(),
                    "ema_unet": ema_unet.state_dict(),
                    "ema_text": ema_text.state_dict(),
                    "opt": opt.state_dict(),
                    "step": step,
                    "text_frozen": text_frozen,
                    "layers_per_block": a.layers_per_block,
                },
                ckpt_path,
            )
            self.save_history()

        def pool_count(at_step: int) -> int:
            return a.pool_start + a.pool_refresh * at_step

        def pool_colour() -> str | None:
            """--one-colour: before that step every clip (the whole pool) is one-colour, after it none."""
            return a.one_colour if step < a.one_colour_until else None

        def recipe(colour: str | None) -> ClipRecipe:
            return ClipRecipe(
                a.seed, a.world_speed, a.appearance, a.small_share, colour, a.free_background, a.free_outline
            )

        def tokenize(captions: list[str]) -> torch.Tensor:
            return self.tokenizer(
                captions,
                padding="max_length",
                max_length=self.tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(self.device)

        source = ClipSource(recipe(pool_colour()), a.workers)

        def encode_clips(first: int, count: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
            clips = source.take(first, count)
            video = torch.from_numpy(np.stack([c.frames for c in clips])).float() / 127.5 - 1
            latents = encode_video(vae, video.permute(0, 4, 1, 2, 3).to(self.device)) * sf
            coverage = torch.from_numpy(np.stack([c.coverage for c in clips]))[:, None].to(self.device)
            return latents, coverage, [c.caption for c in clips]

        def rebuild_pool() -> LatentPool:
            """Exactly the clips an uninterrupted run holds at this step."""
            nonlocal source
            source.close()
            source = ClipSource(recipe(pool_colour()), a.workers)
            fresh = LatentPool(a.pool_size, self.device, pool_colour())
            last = pool_count(step)
            first = max(0, last - a.pool_size)
            fresh.count = first
            log(
                f"encoding the latent pool: clips {first}..{last - 1}"
                + (f", objects {fresh.one_colour}" if fresh.one_colour else "")
            )
            for k in range(first, last, 64):
                fresh.add(*encode_clips(k, min(64, last - k)), tokenize=tokenize)
            return fresh

        pool = LatentPool(a.pool_size, self.device)
        pool_path = self.out / "latent_pool.pt"
        loaded = pool_path.exists() and pool.load_state_dict(torch.load(pool_path, map_location="cpu"), tokenize)
        if (
            not loaded
            or pool.count != pool_count(step)
            or pool.capacity != a.pool_size
            or pool.one_colour != pool_colour()
        ):
            pool = rebuild_pool()

        def save_all() -> None:
            atomic_save(pool.state_dict(), pool_path)
            save()

        # A frozen text encoder gives every caption the same embedding every step: computed once.
        embedded: dict[bytes, torch.Tensor] = {}

        def embed(ids: torch.Tensor) -> torch.Tensor:
            if not text_frozen:
                return text_encoder(ids)[0]
            rows = []
            for row in ids:
                key = row.cpu().numpy().tobytes()
                if key not in embedded:
                    with torch.no_grad():
                        embedded[key] = text_encoder(row[None])[0][0]
                rows.append(embedded[key])
            return torch.stack(rows)

        empty_ids = tokenize([""])[0]
        ema_pairs = [(list(ema_unet.parameters()), list(unet.parameters()))] + (
            [] if text_frozen else [(list(ema_text.parameters()), list(text_encoder.parameters()))]
        )
        last_save = time.time()
        if a.direction_contrast > 0 and not text_frozen and a.freeze_text_from is None:
            raise SystemExit(
                "--direction-contrast needs a frozen text encoder (--text-encoder-from or --freeze-text-from)"
            )
        refresh_at = 0 if a.text_encoder_from is not None else a.freeze_text_from
        t0, s0, in_unet = time.time(), step, 0.0
        noise_gen = torch.Generator(self.device)
        while step < a.unet_steps and not self.out_of_time():
            if pool.one_colour != pool_colour():  # the end of --one-colour: the whole pool turns to the full world
                pool = rebuild_pool()
                save_all()
            if refresh_at is not None and step >= refresh_at and not text_frozen:
                if a.text_encoder_from is None or a.text_motion_share > 0 or a.text_colour_share > 0:
                    log(
                        f"step {step}: refreshing the text encoder on {len(pool)} pool captions "
                        f"(motion share {a.text_motion_share}, colour share {a.text_colour_share}), then freezing it"
                    )
                    captions = pool.captions[: len(pool)]
                    if pool.one_colour is not None:  # the encoder must keep every colour word apart
                        full = recipe(None)
                        captions = [training_clip(full, k).caption for k in range(pool.count - len(pool), pool.count)]
                    refresh_text_encoder(
                        text_encoder,
                        self.tokenizer,
                        captions + [reversed_caption(c) for c in captions],
                        a.text_refresh_steps,
                        a.seed * 31 + step,
                        motion_share=a.text_motion_share,
                        distill_weight=a.text_refresh_distill,
                        log=log,
                        colour_share=a.text_colour_share,
                    )
                if a.text_scale != 1:
                    log(f"step {step}: text encoder output scaled by {a.text_scale}")
                    scale_text_output(text_encoder, a.text_scale)
                ema_text.load_state_dict(text_encoder.state_dict())
                text_frozen = True
                ema_pairs = ema_pairs[:1]
                save_all()
            # the draws: a CPU generator seeded with (seed, step), so a resumed run draws the same
            gen = torch.Generator().manual_seed(a.seed * 104729 + step)
            pick = draw_clips(gen, pool.captions[: len(pool)], a.batch, a.mover_fraction)
            backwards = torch.rand(a.batch, generator=gen) < 0.5
            drop = torch.rand(a.batch, generator=gen) < a.caption_dropout
            t = draw_timesteps(gen, a.batch, scheduler.config.num_train_timesteps, a.focus_fraction, a.focus_timesteps)
            assert pool.latents is not None and pool.coverage is not None and pool.ids is not None
            at, back, t = pick.to(self.device), backwards.to(self.device), t.to(self.device)
            latents = torch.where(back[:, None, None, None, None], pool.latents[at].flip(2), pool.latents[at])
            coverage = torch.where(back[:, None, None, None, None], pool.coverage[at].flip(2), pool.coverage[at])
            ids = torch.where(back[:, None], pool.reversed_ids[at], pool.ids[at])
            ids = torch.where(drop.to(self.device)[:, None], empty_ids[None], ids)
            captions = [
                "" if d else (reversed_caption(pool.captions[i]) if bk else pool.captions[i])
                for i, bk, d in zip(pick.tolist(), backwards.tolist(), drop.tolist())
            ]
            noise_gen.manual_seed(a.seed * 7877 + step)
            noise = torch.randn(latents.shape, generator=noise_gen, device=self.device)
            noisy = scheduler.add_noise(latents, noise, t)
            with torch.set_grad_enabled(not text_frozen):
                emb = embed(ids)
            started = time.perf_counter()
            pred = unet(noisy, t, encoder_hidden_states=emb).sample
            weight = object_weights(coverage, a.object_weight) if a.object_weight > 0 else None
            err = (pred.float() - noise).pow(2)
            if weight is None:
                per_item = err.mean(dim=(1, 2, 3, 4))
            else:
                per_item = (err * weight).mean(dim=(1, 2, 3, 4)) / weight.mean(dim=(1, 2, 3, 4))
            loss = (per_item * loss_weight[t]).mean()
            if a.direction_contrast > 0:
                loss = loss + a.direction_contrast * direction_contrast_loss(
                    unet,
                    text_encoder,
                    self.tokenizer,
                    noisy,
                    t,
                    noise,
                    captions,
                    per_item,
                    loss_weight[t],
                    a.direction_margin,
                )
            lr = a.unet_lr * min(1.0, (step + 1) / a.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            in_unet += time.perf_counter() - started
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            decay = min(a.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for ema_params, live_params in ema_pairs:
                    torch._foreach_lerp_(ema_params, live_params, 1 - decay)
            if a.pool_refresh:
                pool.add(*encode_clips(pool.count, a.pool_refresh), tokenize=tokenize)
            self.history["unet"].append((step, per_item.mean().item()))
            if step % 25 == 0:
                elapsed = time.time() - t0
                rate = elapsed / max(1, step - s0)
                outside = 1 - in_unet / max(elapsed, 1e-9)
                log(
                    f"unet step {step}/{a.unet_steps} loss {per_item.mean().item():.4f} ({rate:.2f} s/step, "
                    f"{outside:.0%} of it outside the UNet's forward and backward)"
                )
            if step % a.every == 0 or time.time() - last_save > 600:
                save_all()
                last_save = time.time()
        save_all()
        source.close()

    # ---------------------------------------------------------------- export
    def export(self, folder: Path) -> None:
        """Write the diffusers folder the package ships (EMA weights, fp16 on disk)."""
        import warnings

        from diffusers import TextToVideoSDPipeline

        vae = self.load_vae().to("cpu")
        ckpt = torch.load(self.out / "unet.pt", map_location="cpu")
        unet = shapes_model.make_unet(ckpt.get("layers_per_block", 1))
        unet.load_state_dict(ckpt["ema_unet"] if not self.args.no_ema else ckpt["unet"])
        text_encoder = shapes_model.make_text_encoder(self.tokenizer)
        text_encoder.load_state_dict(ckpt["ema_text"] if not self.args.no_ema else ckpt["text_encoder"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = TextToVideoSDPipeline(
                vae=vae,
                text_encoder=text_encoder,
                tokenizer=self.tokenizer,
                unet=unet,
                scheduler=shapes_model.make_scheduler(),
            )
            pipe.to(torch.float16)
            tmp = folder.with_name(folder.name + ".tmp")
            pipe.save_pretrained(tmp)
        # transformers 5 saves only tokenizer.json; keep the classic vocab.json + merges.txt too,
        # as ModelScope's checkpoint has them (slow tokenizers and older libraries read those).
        import shutil

        for name in ("vocab.json", "merges.txt"):
            source = (self.args.from_model or self.out) / "tokenizer"
            shutil.copy(source / name, tmp / "tokenizer" / name)
        (tmp / "training.json").write_text(
            json.dumps({"unet_steps": ckpt["step"], "seed": self.args.seed, "batch": self.args.batch}, indent=1)
        )
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        log(f"exported step {ckpt['step']} to {folder}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="build/shapes-train")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae-steps", type=int, default=1500)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-lr", type=float, default=5e-4)
    p.add_argument("--vae-kl", type=float, default=1e-4, help="weight of the L2 penalty on latents")
    p.add_argument("--vae-object-weight", type=float, default=10.0)
    p.add_argument("--unet-steps", type=int, default=12000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--pool-size", type=int, default=3000, help="encoded clips kept for UNet training")
    p.add_argument("--pool-start", type=int, default=256, help="clips encoded before the first UNet step")
    p.add_argument("--pool-refresh", type=int, default=1, help="new clips encoded per UNet step")
    p.add_argument("--unet-lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--min-snr", type=float, default=5.0)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument(
        "--freeze-text-from",
        type=int,
        default=None,
        metavar="STEP",
        help="at this UNet step, refresh the text encoder on captions (see refresh_text_encoder) and freeze it",
    )
    p.add_argument("--text-refresh-steps", type=int, default=400)
    p.add_argument(
        "--text-motion-share",
        type=float,
        default=0.0,
        metavar="S",
        help="share of the refresh's end-position summary on the motion words (0: an equal bag of words, as "
        "shipped); with --text-encoder-from the loaded encoder is refreshed so at step 0",
    )
    p.add_argument(
        "--text-colour-share",
        type=float,
        default=0.0,
        metavar="S",
        help="share of the refresh's end-position summary on the object colour words (with the motion share, "
        "the end positions carry what to draw and where it goes; no help in the toy)",
    )
    p.add_argument(
        "--text-scale",
        type=float,
        default=1.0,
        metavar="S",
        help="multiply the frozen text encoder's output by S (its final layer norm's weights), after the refresh",
    )
    p.add_argument(
        "--text-refresh-distill",
        type=float,
        default=1.0,
        metavar="W",
        help="weight of the refresh's pull toward the encoder's current outputs",
    )
    p.add_argument(
        "--text-encoder-from",
        type=Path,
        default=None,
        metavar="CKPT",
        help="start a new UNet run with the frozen text encoder of this checkpoint (an earlier run's unet.pt)",
    )
    p.add_argument(
        "--unet-from",
        type=Path,
        default=None,
        metavar="CKPT",
        help="with --text-encoder-from: start the UNet from this checkpoint's EMA UNet (fresh optimizer, step 0)",
    )
    p.add_argument(
        "--direction-contrast",
        type=float,
        default=0.0,
        metavar="W",
        help="weight of a hinge asking the prediction under the motion-reversed caption to be worse "
        "(needs a frozen text encoder)",
    )
    p.add_argument(
        "--direction-margin",
        type=float,
        default=0.2,
        help="the hinge's margin, as a fraction of the true caption's noise error",
    )
    p.add_argument(
        "--high-noise-weight",
        type=float,
        default=1.0,
        metavar="K",
        help="multiply the loss weight by 1/SNR, capped at K, where SNR < 1 (1: off)",
    )
    p.add_argument(
        "--world-speed",
        type=lambda v: tuple(float(x) for x in v.split(":")),
        default=world.SPEED_RANGE,
        metavar="LO:HI",
        help="pixels per frame of the UNet's training clips (default: the world's)",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=77,
        help="padded prompt length of the tokenizer and text encoder (77: CLIP's; captions are at most 23 tokens)",
    )
    p.add_argument(
        "--focus-fraction",
        type=float,
        default=0.0,
        help="share of each batch whose timestep is drawn from --focus-timesteps (0: uniform)",
    )
    p.add_argument(
        "--focus-timesteps",
        type=lambda v: tuple(int(x) for x in v.split(":")),
        default=FOCUS_TIMESTEPS,
        metavar="LO:HI",
        help="timestep range of the focused draws (default {}:{})".format(*FOCUS_TIMESTEPS),
    )
    p.add_argument(
        "--mover-fraction",
        type=float,
        default=0.0,
        metavar="F",
        help="share of each batch drawn from one-object, constant-direction clips (0: uniform, as the shipped run)",
    )
    p.add_argument(
        "--one-colour",
        choices=tuple(world.OBJECT_COLOURS),
        default=None,
        metavar="COLOUR",
        help="a curriculum: the pool's clips up to --one-colour-until draw every object in this colour",
    )
    p.add_argument(
        "--one-colour-until",
        type=int,
        default=0,
        metavar="STEP",
        help="with --one-colour: the UNet step at which the whole pool is re-encoded from the full world",
    )
    p.add_argument("--every", type=int, default=100, help="checkpoint every N steps")
    p.add_argument("--minutes", type=float, default=0, help="stop (and checkpoint) after this long")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cpu", action="store_true", help="ignore a CUDA GPU")
    p.add_argument("--export", type=Path, help="write the shippable diffusers folder here and exit")
    p.add_argument("--no-ema", action="store_true", help="export the live weights instead of the EMA")
    p.add_argument(
        "--from-model",
        type=Path,
        default=None,
        metavar="DIR",
        help="continue a diffusers folder of this model (e.g. the shipped vidzero/shapes/model): its VAE, "
        "frozen text encoder and tokenizer, and its UNet as the start",
    )
    p.add_argument(
        "--decoder-steps",
        type=int,
        default=0,
        metavar="N",
        help="fine-tune the VAE's decoder alone for N steps (the latent space stays as it is)",
    )
    p.add_argument("--decoder-lr", type=float, default=1e-4)
    p.add_argument("--decoder-batch", type=int, default=16)
    p.add_argument(
        "--decoder-from",
        type=Path,
        default=None,
        metavar="PT",
        help="use the fine-tuned decoder of another run's decoder.pt (for --export)",
    )
    p.add_argument(
        "--small-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of appearance-world objects whose radius is drawn from the small range only (0: the "
        "whole range, as before)",
    )
    p.add_argument(
        "--object-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="weight the noise error by 1 + W on the latent pixels objects touch and the ring around them "
        "(where size is decided); 0: the plain loss",
    )
    p.add_argument(
        "--free-background",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of appearance-world clips whose background takes any dark colour, not a named one "
        "(so that only the clip's other frames tell it); 0: the named colours only",
    )
    p.add_argument(
        "--layers-per-block",
        type=int,
        default=1,
        metavar="N",
        help="UNet layers per block (resnet, temporal conv, attentions); with --from-model a one-layer "
        "UNet is grown to N, the new layers starting as the identity (the depth arm)",
    )
    p.add_argument(
        "--free-outline",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of appearance-world objects drawn with a random star-shaped outline that the caption "
        "does not name (no shape word): only the clip's other frames tell it; 0: the shape words' forms only",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes that render training clips ahead (0: in the training process; on a GPU use several)",
    )
    p.add_argument(
        "--appearance",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of training clips from the appearance world: continuous sizes, several forms per shape "
        "word, colour jitter, two-tone objects (world.Form); 0: the classic world only",
    )
    args = p.parse_args(argv)
    lo, hi = args.focus_timesteps
    steps = shapes_model.MODELSCOPE_SCHEDULER_CONFIG["num_train_timesteps"]
    if not 0 <= args.focus_fraction <= 1 or not 0 <= lo < hi <= steps:
        p.error(f"--focus-fraction must be in [0, 1] and --focus-timesteps LO:HI within 0..{steps} with LO < HI")
    if (args.one_colour is None) != (args.one_colour_until <= 0):
        p.error("--one-colour and --one-colour-until (a positive step) go together")
    if not 0 <= args.mover_fraction <= 1:
        p.error("--mover-fraction must be in [0, 1]")
    if args.unet_from is not None and args.text_encoder_from is None:
        p.error("--unet-from needs --text-encoder-from (the UNet is warm-started on a frozen encoder)")
    if len(args.world_speed) != 2 or not 0 < args.world_speed[0] <= args.world_speed[1]:
        p.error("--world-speed must be LO:HI pixels per frame with 0 < LO <= HI")
    if not 0 <= args.text_motion_share < 1:
        p.error("--text-motion-share must be in [0, 1)")
    if args.text_colour_share < 0 or not shares_fit(args.text_motion_share, args.text_colour_share):
        p.error("--text-colour-share must be in [0, 1) and add up with --text-motion-share to less than 1")
    if args.text_scale <= 0:
        p.error("--text-scale must be positive")
    if (
        (args.text_motion_share > 0 or args.text_colour_share > 0 or args.text_scale != 1)
        and args.text_encoder_from is None
        and args.freeze_text_from is None
    ):
        p.error(
            "--text-motion-share, --text-colour-share and --text-scale act on a refresh: "
            "give --text-encoder-from or --freeze-text-from"
        )
    if args.high_noise_weight < 1:
        p.error("--high-noise-weight must be >= 1 (1: off)")
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = Trainer(args)
    if args.export:
        trainer.export(args.export)
        return
    trainer.train_vae()
    trainer.train_decoder()
    trainer.train_unet()


if __name__ == "__main__":
    main()
