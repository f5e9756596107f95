"""Packed windows: the model evaluations of several windows sampled at once, in one model call.

A GPU given one 16-frame window of 32x32 latents runs small matrices and idles; given the
windows of several runs in one batch it does the same arithmetic in fewer, fuller calls. Each
run samples in its own thread; its denoiser hands each request (window, timestep, prompt) to the
`Packer` and waits. When every run still sampling has a request in, the last one to arrive runs
them all as one call of the backbone (`predict_many`), in the order the runs joined, and each gets
its own rows back. A run leaves when it is done; one that joins waits for the next pack.

Each window's result is the unpacked result up to the arithmetic of a larger batch: kernels may
sum in another order for another batch size, so packed and unpacked frames agree within a few
8-bit levels, not to the bit (docs/benchmarks.md measures it). Runs that must be reproduced to the
byte (a resume promises that) are not packed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vidzero.core.sampler import Denoiser, Prediction, differentiating


@dataclass
class Request:
    z: torch.Tensor  # (1, C, F, h, w)
    t: torch.Tensor
    cond: torch.Tensor  # (1, tokens, width) text states
    uncond: torch.Tensor | None  # None: the conditional branch alone


Evaluate = Callable[[list[Request]], list[Prediction]]


class Packer:
    def __init__(self, evaluate: Evaluate) -> None:
        self.evaluate = evaluate
        self.lock = threading.Condition()
        self.members: list[int] = []  # in the order they joined
        self.pending: dict[int, Request] = {}
        self.results: dict[int, Prediction | BaseException] = {}
        self.next_id = 0
        self.calls = 0  # model calls made
        self.packed = 0  # requests they held
        self.cancelled: BaseException | None = None
        self.evaluating = False  # a model call is under way (outside the lock)

    def join(self) -> int:
        with self.lock:
            member = self.next_id
            self.next_id += 1
            self.members.append(member)
            return member

    def leave(self, member: int) -> None:
        with self.lock:
            self.members.remove(member)
            self._run_if_full()

    def cancel(self, reason: BaseException) -> None:
        """Every run waiting now or submitting later gets `reason` raised (an interrupted batch)."""
        with self.lock:
            self.cancelled = reason
            self.lock.notify_all()

    def submit(self, member: int, request: Request) -> Prediction:
        with self.lock:
            self.pending[member] = request
            self._run_if_full()
            while member not in self.results and self.cancelled is None:
                self.lock.wait()
            if self.cancelled is not None and member not in self.results:
                self.pending.pop(member, None)
                raise self.cancelled
            result = self.results.pop(member)
        if isinstance(result, BaseException):
            raise result
        return result

    def _run_if_full(self) -> None:
        """With the lock held: when every member has a request in, evaluate them together. The
        model call runs with the lock released, so that a cancel (Ctrl-C) is never kept waiting
        for it: the runs stop at their next request instead."""
        while not (
            self.cancelled is not None
            or self.evaluating
            or not self.pending
            or any(m not in self.pending for m in self.members)
        ):
            order = [m for m in self.members if m in self.pending]
            requests = [self.pending.pop(m) for m in order]
            self.evaluating = True
            self.lock.release()
            try:
                outputs: list[Prediction | BaseException] = list(self.evaluate(requests))
            except BaseException as exc:  # every waiting run sees the failure
                outputs = [exc] * len(order)
            finally:
                self.lock.acquire()
                self.evaluating = False
            self.calls += 1
            self.packed += len(order)
            self.results.update(zip(order, outputs))
            self.lock.notify_all()


def split_predictions(out: torch.Tensor, requests: list[Request]) -> list[Prediction]:
    """The rows of a packed model call back to each request (uncond first for guided ones)."""
    predictions, row = [], 0
    for r in requests:
        batch = r.z.shape[0]
        if r.uncond is not None:
            uncond, cond = out[row : row + batch], out[row + batch : row + 2 * batch]
            predictions.append(Prediction(cond, uncond))
            row += 2 * batch
        else:
            predictions.append(Prediction(out[row : row + batch], None))
            row += batch
    return predictions


class PackedDenoiser:
    """A run's denoiser for one prompt, evaluated in the packer's batches."""

    def __init__(self, packer: Packer, member: int, cond: torch.Tensor, uncond: torch.Tensor, direct: Denoiser) -> None:
        self.packer, self.member, self.cond, self.uncond = packer, member, cond, uncond
        self.direct = direct  # the run's own denoiser, for evaluations that need a gradient

    def differentiating(self) -> contextlib.AbstractContextManager[object]:
        return differentiating(self.direct)

    def __call__(self, z: torch.Tensor, t: torch.Tensor, guided: bool) -> Prediction:
        if torch.is_grad_enabled():  # posterior guidance differentiates through this evaluation alone
            return self.direct(z, t, guided)
        return self.packer.submit(self.member, Request(z, t, self.cond, self.uncond if guided else None))
