"""The frames of a running plan: what is known, what later windows read, what is handed out.

The engine's loop asks three things of it: the clean latents a window's known slots show
(`window`), to take a window's generated latents in (`add`), and the frames that can be handed
out in timeline order (`ready`). Everything else lives here: encoding known frames once, the
queue mode, freeing what no later window reads (memory stays flat in the video's length), and the
snapshot a resumed run starts from (`state`).

Queue modes (how a generated frame conditions later windows):
- "pixel" (the release's behaviour): the frame is decoded, quantised to 8-bit as written to the
  output, and encoded again; later windows see exactly the frame the user sees.
- "latent": the generated latent itself is the known latent of later windows (no round trip).
Known input frames are encoded once either way (the VAE encoder is deterministic: posterior mean).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vidzero.core.backbone import Backbone
from vidzero.core.sampler import Window
from vidzero.core.timeline import Layout, WindowJob, last_reads
from vidzero.errors import BadInput

if TYPE_CHECKING:
    from vidzero.core.targets import MovingTargets


@dataclass
class Frame:
    """One output frame: its pixels, its place on the timeline, where it came from."""

    index: int
    image: object  # (H, W, 3) uint8 by default; see PlannedRun.output_type
    known: bool
    seed: int | None = None  # the seed of the window that generated it
    latent: torch.Tensor | None = None  # the sampled latent (generated frames) or the encoded one


@dataclass
class EngineState:
    """Everything a run needs to go on after job `next_job` (see vidzero.runs.state)."""

    next_job: int
    next_out: int
    pixels: dict[int, np.ndarray]  # frames later jobs read, and frames not yet handed out
    latents: dict[int, torch.Tensor]  # queue latents later jobs read (latent queue, or given)
    seeds: dict[int, int]
    tail_latents: dict[int, torch.Tensor] = field(default_factory=dict)  # generated frames among the last window-1
    decoder_cache: list[Any] | None = None  # a causal decoder's state after the frames handed out


def to_pixels(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8, rounding to nearest."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def from_pixels(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1


def repeated_slots(job: WindowJob) -> torch.Tensor:
    """(F,) bool: the known slots that repeat a frame another known slot holds nearer to the
    slots the job generates (of each frame's copies, the nearest one is the frame)."""
    new = list(job.generate)
    nearest: dict[int, int] = {}
    for slot, frame in enumerate(job.slots):
        if slot in new:
            continue
        best = nearest.get(frame)
        gap = min(abs(slot - n) for n in new) if new else 0
        if best is None or gap < min(abs(best - n) for n in new):
            nearest[frame] = slot
    return torch.tensor([s not in new and nearest[f] != s for s, f in enumerate(job.slots)])


class FrameStore:
    def __init__(
        self,
        layout: Layout,
        backbone: Backbone,
        queue: str,
        resume: EngineState | None = None,
        targets: MovingTargets | None = None,
    ) -> None:
        self.layout, self.bb, self.queue = layout, backbone, queue
        self.targets = targets  # moving targets: what the queue reads and what is written (vidzero.core.targets)
        self.pixels: dict[int, np.ndarray] = dict(layout.known)
        self.latents: dict[int, torch.Tensor] = dict(layout.known_latents or {})
        self.seeds: dict[int, int] = {}
        self.tail: dict[int, torch.Tensor] = {}  # generated latents among the last window-1 (for extend --from)
        self.fresh: dict[int, torch.Tensor] = {}  # sampled latents not handed out yet
        self.last_read = last_reads(layout.jobs)
        self.tail_from = layout.length - (backbone.frames - 1)
        self.next_out = self.next_job = 0
        if resume is not None:
            self.pixels.update(resume.pixels)
            self.latents.update(resume.latents)
            self.seeds.update(resume.seeds)
            self.tail.update(resume.tail_latents)
            self.next_out, self.next_job = resume.next_out, resume.next_job
            self._check_resume()
            self._forget(self.next_job - 1)

    def _check_resume(self) -> None:
        """A resumed state holds every generated frame the rest of the plan reads or has still to
        hand out (a record that passes its checksum can still have been written by hand)."""
        jobs = self.layout.jobs
        made = {f for job in jobs[: self.next_job] for f in job.targets if f < self.layout.length}
        held = self.pixels.keys() | self.latents.keys()
        wanted = {f for job in jobs[self.next_job :] for f in job.reads} | {f for f in made if f >= self.next_out}
        missing = sorted((wanted & made) - held)
        if missing:
            raise BadInput(
                f"the run's state is damaged: it records {self.next_job} windows done but not frame {missing[0]}, "
                "which they made"
            )

    def latent_of(self, frame: int) -> torch.Tensor:
        if frame not in self.latents:
            self.latents[frame] = self.bb.encode_frames(from_pixels(self.pixels[frame][None]))[0]
        return self.latents[frame]

    def window(self, job: WindowJob) -> Window:
        """The clean latents of the job's known slots, in a window of the backbone's shape."""
        known = torch.ones(len(job.slots), dtype=torch.bool)
        known[list(job.generate)] = False
        clean = torch.zeros(
            1, *self.bb.latent_shape[:1], len(job.slots), *self.bb.latent_shape[1:], device=self.bb.device
        )
        for slot, frame in enumerate(job.slots):
            if known[slot]:
                clean[0, :, slot] = self.latent_of(frame)
        given_frames = self.layout.given_frames()
        given = torch.tensor([bool(k) and frame in given_frames for k, frame in zip(known, job.slots)])
        return Window(clean, known, job.init_source, given, repeated_slots(job))

    def before(self, frame: int) -> np.ndarray | None:
        """The pixels of the frame before `frame`, where the run still holds them."""
        return self.pixels.get(frame - 1)

    def starts_from_given(self, job: WindowJob) -> bool:
        """Whether every new slot of the job starts from a frame the user gave."""
        given = self.layout.given_frames()
        sources = [job.init_source[slot] for slot in job.generate]
        return all(s is not None and job.slots[s] in given for s in sources)

    def add(self, job: WindowJob, window: torch.Tensor, seed: int) -> None:
        """Take in the job's generated slots: decode them, queue them for later windows."""
        kept = [(slot, frame) for slot, frame in zip(job.generate, job.targets) if frame < self.layout.length]
        new_latents = torch.stack([window[0, :, slot] for slot, _ in kept])
        images = to_pixels(self.bb.decode(new_latents))
        for (_, frame), latent, image in zip(kept, new_latents, images):
            queued, written = image, image
            if self.targets is not None:
                queued, written = self.targets.queued(frame, image, self.before(frame))
            self.pixels[frame] = written
            self.seeds[frame] = seed
            self.fresh[frame] = latent
            if queued is not image:  # later windows read the target: its own latent
                self.latents[frame] = self.bb.encode_frames(from_pixels(queued[None]).to(self.bb.device))[0]
            elif self.queue == "latent":
                self.latents[frame] = latent
            if frame >= self.tail_from:  # what a longer run's later windows read of it
                self.tail[frame] = self.latents.get(frame, latent)

    def ready(self, done_job: int) -> Iterator[Frame]:
        """The frames that exist now and have not been handed out, in timeline order; then forget
        what no job after `done_job` reads."""
        while self.next_out < self.layout.length and self.next_out in self.pixels:
            yield self._frame(self.next_out)
            self.next_out += 1
        self.next_job = done_job + 1
        self._forget(done_job)

    def rest(self) -> Iterator[Frame]:
        """Known frames after the last generated one."""
        while self.next_out < self.layout.length:
            if self.next_out not in self.pixels:
                raise RuntimeError(f"the plan never produced frame {self.next_out}")
            yield self._frame(self.next_out)
            self.next_out += 1

    def state(self) -> EngineState:
        queued = self.targets is not None and self.targets.in_queue
        keep = self.latents if self.queue == "latent" or self.layout.known_latents or queued else {}
        return EngineState(
            self.next_job,
            self.next_out,
            dict(self.pixels),
            {f: keep[f] for f in self.pixels if f in keep},
            dict(self.seeds),
            dict(self.tail),
        )

    def held(self) -> int:
        """Frames held in memory (pixels or latents), for the flat-memory check."""
        return max(len(self.pixels), len(self.latents))

    def _forget(self, done_job: int) -> None:
        for frame in [f for f in self.pixels if f < self.next_out and self.last_read.get(f, -1) <= done_job]:
            self.pixels.pop(frame)
            self.latents.pop(frame, None)

    def _frame(self, index: int) -> Frame:
        fresh = self.fresh.pop(index, None)
        latent = fresh if fresh is not None else self.latents.get(index)
        return Frame(index, self.pixels[index], index in self.layout.known, self.seeds.get(index), latent)


class VideoFrameStore(FrameStore):
    """The frames of a plan whose timeline counts latent frames that hold several video frames
    (Wan). Known latent frames come as latents (the task encoded them); generated ones are the
    queue as they are (a latent queue: a decode and re-encode of a group of frames through the
    causal VAE is no round trip of one frame). Frames are handed out as video frames, decoded in
    timeline order by the backbone's streaming decoder, the user's own pixels where given."""

    def __init__(self, layout: Layout, backbone: Backbone, queue: str, resume: EngineState | None = None) -> None:
        if layout.video is None or queue != "latent":
            raise ValueError("latent frames of several video frames need a video placement and the latent queue")
        self.video = layout.video
        self.decoder = backbone.decoder()
        super().__init__(layout, backbone, queue, resume)
        self.pixels = {}
        if resume is not None and resume.decoder_cache is not None:
            self.decoder.load(resume.decoder_cache, resume.next_out)

    def latent_of(self, frame: int) -> torch.Tensor:
        return self.latents[frame]

    def add(self, job: WindowJob, window: torch.Tensor, seed: int) -> None:
        for slot, frame in zip(job.generate, job.targets):
            if frame < self.layout.length:
                latent = window[0, :, slot]
                self.latents[frame] = self.fresh[frame] = latent
                self.seeds[frame] = seed
                if frame >= self.tail_from:
                    self.tail[frame] = latent

    def ready(self, done_job: int) -> Iterator[Frame]:
        while self.next_out < self.layout.length and self.next_out in self.latents:
            yield from self._video_frames(self.next_out)
            self.next_out += 1
        self.next_job = done_job + 1
        self._forget(done_job)

    def rest(self) -> Iterator[Frame]:
        while self.next_out < self.layout.length:
            if self.next_out not in self.latents:
                raise RuntimeError(f"the plan never produced latent frame {self.next_out}")
            yield from self._video_frames(self.next_out)
            self.next_out += 1

    def _video_frames(self, slot: int) -> Iterator[Frame]:
        latent = self.latents[slot]
        self.fresh.pop(slot, None)
        decoded = to_pixels(self.decoder.push(latent))
        for offset, index in enumerate(self.video.frames_of(slot)):
            if index >= self.video.length:
                break
            given = self.video.given.get(index)
            image = given if given is not None else decoded[offset]
            yield Frame(index, image, given is not None, self.seeds.get(slot), latent if offset == 0 else None)

    def state(self) -> EngineState:
        return EngineState(
            self.next_job,
            self.next_out,
            {},
            {
                f: self.latents[f]
                for f in self.latents
                if self.last_read.get(f, -1) >= self.next_job or f >= self.next_out
            },
            dict(self.seeds),
            dict(self.tail),
            self.decoder.state(),
        )

    def held(self) -> int:
        return len(self.latents)

    def _forget(self, done_job: int) -> None:
        for frame in [f for f in self.latents if f < self.next_out and self.last_read.get(f, -1) <= done_job]:
            self.latents.pop(frame)
