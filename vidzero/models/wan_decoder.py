"""Wan's causal VAE decoded as latent frames are made: one latent frame at a time, in order, the
decoder's cache kept between them (and saved with a run's state), tiled when the VAE's tiling is
on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from vidzero.errors import BadInput

if TYPE_CHECKING:
    from vidzero.models.wan import WanBackbone


class CausalDecoder:
    """Decodes a video's latent frames one at a time, in order, keeping the causal decoder's
    cache between them (what AutoencoderKLWan's own decode does in one call): latent frame 0
    gives 1 video frame, each later one 4. With the VAE's tiling on (`--vae-tiling`) and frames
    larger than a tile, each overlapping spatial tile keeps its own cache and the tiles are
    blended as `AutoencoderKLWan.tiled_decode` blends them, so the frames equal its output."""

    def __init__(self, backbone: WanBackbone) -> None:
        from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

        self.bb = backbone
        vae = backbone.vae
        self.convs = sum(isinstance(m, WanCausalConv3d) for m in vae.decoder.modules())
        _, h, w = backbone.latent_shape
        scale = vae.spatial_compression_ratio
        self.tile = (vae.tile_sample_min_height // scale, vae.tile_sample_min_width // scale)
        tiled = vae.use_tiling and (h > self.tile[0] or w > self.tile[1])
        stride = (vae.tile_sample_stride_height // scale, vae.tile_sample_stride_width // scale)
        # the tiles' top-left corners, row by row, as tiled_decode visits them
        self.rows = [[(i, j) for j in range(0, w, stride[1])] for i in range(0, h, stride[0])] if tiled else [[(0, 0)]]
        self.tiled = tiled
        self.caches: dict[tuple[int, int], list[Any]] = {
            corner: [None] * self.convs for row in self.rows for corner in row
        }
        self.count = 0  # latent frames decoded so far

    def state(self) -> list[Any]:
        """The caches (tensors, or None / "Rep" markers) after the latent frames decoded so far,
        tile after tile."""
        return [
            entry.detach().cpu().clone() if isinstance(entry, torch.Tensor) else entry
            for cache in self.caches.values()
            for entry in cache
        ]

    def load(self, cache: list[Any], count: int) -> None:
        """Go on from a saved state: `count` latent frames decoded, with these caches."""
        if len(cache) % self.convs:
            raise ValueError("the decoder state belongs to another VAE")
        if len(cache) != len(self.caches) * self.convs:
            raise BadInput(
                "this run was started with{} VAE tiling; resume it with{} {{option}}".format(
                    "out" if len(cache) == self.convs else "", "out" if len(cache) == self.convs else ""
                ),
                "vae_tiling",
            )
        entries = [entry.to(self.bb.device) if isinstance(entry, torch.Tensor) else entry for entry in cache]
        for k, corner in enumerate(self.caches):
            self.caches[corner] = entries[k * self.convs : (k + 1) * self.convs]
        self.count = count

    @torch.no_grad()
    def push(self, latent: torch.Tensor) -> torch.Tensor:
        """(C, h, w) normalised latent -> (n, 3, H, W) video frames in [-1, 1]."""
        vae = self.bb.vae
        z = latent.to(self.bb.device, torch.float32)[None, :, None]
        z = z * self.bb.latents_std.to(z.device) + self.bb.latents_mean.to(z.device)
        first = self.count == 0
        self.count += 1
        if not self.tiled:
            out = vae.decoder(vae.post_quant_conv(z), feat_cache=self.caches[(0, 0)], feat_idx=[0], first_chunk=first)
            return out.clamp(-1, 1)[0].permute(1, 0, 2, 3)
        th, tw = self.tile
        decoded = [
            [
                vae.decoder(
                    vae.post_quant_conv(z[:, :, :, i : i + th, j : j + tw]),
                    feat_cache=self.caches[(i, j)],
                    feat_idx=[0],
                    first_chunk=first,
                )
                for i, j in row
            ]
            for row in self.rows
        ]
        scale = vae.spatial_compression_ratio
        stride_h, stride_w = vae.tile_sample_stride_height, vae.tile_sample_stride_width
        blend_h, blend_w = vae.tile_sample_min_height - stride_h, vae.tile_sample_min_width - stride_w
        rows = []
        for r, row in enumerate(decoded):
            parts = []
            for c, tile in enumerate(row):
                if r > 0:
                    tile = vae.blend_v(decoded[r - 1][c], tile, blend_h)
                if c > 0:
                    tile = vae.blend_h(row[c - 1], tile, blend_w)
                parts.append(tile[:, :, :, :stride_h, :stride_w])
            rows.append(torch.cat(parts, dim=-1))
        _, h, w = self.bb.latent_shape
        out = torch.cat(rows, dim=3)[:, :, :, : h * scale, : w * scale]
        return out.clamp(-1, 1)[0].permute(1, 0, 2, 3)
