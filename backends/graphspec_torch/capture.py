"""``capture="cuda_graph"`` (``--capture cuda_graph``): the whole training step (forward,
backward, optimizer update) recorded once as a CUDA graph and replayed for every batch, so
a small model's step costs one launch instead of hundreds.

PyTorch's whole-network capture recipe (torch.cuda.graphs): the batch is copied into static
input buffers, the graph replays the recorded kernels on the same memory, and the step's
record ``[loss, *terms]`` comes back in a static output, copied out.  Capture needs warm-up
steps first (on a side stream, for cuBLAS and the optimizer's state to exist); they are real
steps, so the parameters and the optimizer's state are put back in place afterwards and the
run's trajectory is the eager one's.  A batch of another shape (an epoch's last, smaller
batch) gets a graph of its own.

What a replay cannot do is refused before training (:func:`refusal`): a step that varies
from one replay to the next in ways a graph does not see (an lr schedule: the lr is a Python
number recorded into the kernels; noise drawn by stochastic ops; adversarial training's
second pass; fp16's loss scaling, which skips steps on the host's decision) or an optimizer
torch cannot capture.  On the CPU there is no launch overhead to save, and no CUDA graph:
capture is refused there (:func:`check_device`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from graphspec.errors import BackendError

NONE = "none"
CUDA_GRAPH = "cuda_graph"
MODES = (NONE, CUDA_GRAPH)
WARMUP_STEPS = 3  # PyTorch's recipe warms up on a side stream before capturing
# torch.optim classes whose step runs on the device alone with ``capturable=True`` (SGD
# keeps no step count on the host and needs no flag).  Adagrad has no capturable step.
CAPTURABLE = {"Adam", "AdamW", "RMSprop"}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise BackendError(f"unknown capture mode '{mode}'", hint="capture: none, cuda_graph")
    return mode


def check_device(mode: str, device: torch.device) -> None:
    """Capture is for a CUDA device; refused elsewhere (no fallback: the flag would do
    nothing, and a run that silently ignores it measures the wrong thing)."""
    if mode != NONE and device.type != "cuda":
        raise BackendError(
            f"--capture {mode} needs a CUDA device; this program runs on {device.type}",
            hint="capture saves kernel launches on a GPU; on the CPU leave it out "
            "(--capture none), or train with --device cuda",
        )


def refusal(ir: Any, train: Any, amp_dtype: torch.dtype | None) -> BackendError | None:
    """Why the training step of ``ir`` with ``train`` cannot be replayed from a graph (at
    the spec's node where one is to blame), or None when it can (module docstring)."""
    why = _why_not(ir, train, amp_dtype)
    if why is None:
        return None
    message, node = why
    return BackendError(
        f"--capture {CUDA_GRAPH} cannot record this training step: {message}",
        ir.node(node).src if node is not None else None,
        hint="train without --capture",
    )


def _why_not(ir: Any, train: Any, amp_dtype: torch.dtype | None) -> tuple[str, str | None] | None:
    if ir.stochastic_nodes:
        first = ir.stochastic_nodes[0]
        return (f"op '{first}' draws new noise every step, which a replayed step does not", first)
    message = _why_not_train(train, amp_dtype)
    return (message, None) if message is not None else None


def _why_not_train(train: Any, amp_dtype: torch.dtype | None) -> str | None:
    schedule = train.schedule
    if schedule.name != "constant" or schedule.warmup:
        return (
            f"the lr schedule '{schedule.name}' changes the lr every step; a captured "
            "step keeps the lr it was recorded with (use schedule: constant)"
        )
    if train.adversarial is not None:
        return "adversarial training's second pass depends on the first pass's gradients"
    if amp_dtype == torch.float16:
        return "fp16's loss scaling decides on the host whether to skip a step (use amp bf16)"
    opt = train.optimizer
    if opt.name != "sgd" and _torch_name(opt.name) not in CAPTURABLE:
        return f"torch's {opt.name} optimizer has no capturable step"
    if opt.name == "sgd" and opt.momentum and opt.dampening:
        # The graph records the step with a momentum buffer; torch's first step without one
        # takes the gradient undamped.
        return "SGD with dampening starts its momentum differently on the first step"
    return None


def _torch_name(spec_name: str) -> str:
    return {"adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop"}.get(spec_name, spec_name)


def optimizer_options(train: Any) -> dict[str, Any]:
    """Extra keyword arguments for the optimizer of a captured step."""
    return {} if train.optimizer.name == "sgd" else {"capturable": True}


class GraphedStep:
    """``step(batch) -> record`` recorded as a CUDA graph per batch shape and replayed.
    ``tensors``: what the step changes in place besides the optimizer's state (parameters,
    state buffers such as batch norm's running statistics)."""

    def __init__(
        self,
        step: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        tensors: list[torch.Tensor],
        optimizer: torch.optim.Optimizer,
    ) -> None:
        self.step = step
        self.tensors = tensors
        self.optimizer = optimizer
        # shapes -> (static inputs, graph, static record)
        self.graphs: dict[tuple[Any, ...], tuple[dict[str, torch.Tensor], Any, torch.Tensor]] = {}

    def forget(self) -> None:
        """Drop the graphs: the optimizer's state was replaced (new tensors, new addresses);
        the next step records again."""
        self.graphs.clear()

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        key = tuple((k, tuple(v.shape), v.dtype) for k, v in batch.items())
        if key not in self.graphs:
            self.graphs[key] = self._capture(batch)
        static, graph, record = self.graphs[key]
        for k, v in batch.items():
            static[k].copy_(v)
        graph.replay()
        return record.clone()  # the next replay overwrites the static record

    def _capture(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], Any, torch.Tensor]:
        static = {k: v.clone() for k, v in batch.items()}
        saved = self._snapshot()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self.step(static)
        torch.cuda.current_stream().wait_stream(side)
        self._restore(saved)  # the warm-up steps were real: undo them, in place
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            record = self.step(static)
        self._restore(saved)  # capturing ran nothing, but keep the state exact regardless
        return static, graph, record

    def _snapshot(self) -> tuple[list[torch.Tensor], dict[Any, dict[str, Any]]]:
        state = {
            p: {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in s.items()}
            for p, s in self.optimizer.state.items()
        }
        return [t.detach().clone() for t in self.tensors], state

    def _restore(self, saved: tuple[list[torch.Tensor], dict[Any, dict[str, Any]]]) -> None:
        """Parameters, state buffers and optimizer state back to the snapshot, in place (the
        graph keeps their addresses); optimizer state created since (the first step's
        buffers) back to zero, where a fresh optimizer's first step starts."""
        values, state = saved
        with torch.no_grad():
            for t, v in zip(self.tensors, values):
                t.copy_(v)
            for p, s in self.optimizer.state.items():
                before = state.get(p, {})
                for k, v in s.items():
                    old = before.get(k)
                    if isinstance(old, torch.Tensor):
                        v.copy_(old)
                    elif isinstance(v, torch.Tensor):
                        v.zero_()
