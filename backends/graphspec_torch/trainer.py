"""TorchTrainer: the Trainer protocol (graphspec.backend) with everything on the device.

Each split is moved to the device once (kept in host memory, pinned, only when it would not
fit) and batches are sliced there with index tensors: the epoch's batch indices go over in
one copy.  Per-step loss values stay on the device in one tensor; the host reads them once per
epoch, which is also when non-finite losses are detected (with the first bad step).

Noise for stochastic ops comes from a ``torch.Generator`` reseeded from (seed, epoch) with
``graphspec.train.seeds`` at each epoch, and from (seed, EVAL) at each evaluation, so a run
resumed at an epoch boundary draws what the uninterrupted run drew, and an evaluation is a
pure function of the parameters (the numpy trainer's contract, with torch's own numbers).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from graphspec.errors import BackendError, DataError, NonFiniteLoss
from graphspec.freed_memory import keep_freed_memory
from graphspec.ir.checks import unused_inputs
from graphspec.ir.node import OpNode
from graphspec.ir.plan import Plan
from graphspec.train import seeds
from graphspec.train.adversarial import fgsm_example, mix, mix_each
from graphspec_torch import capture
from graphspec_torch.device import autocast
from graphspec_torch.optim import Optim

Arrays = dict[str, np.ndarray]
EVAL_CHUNK = 8192  # rows per forward pass in evaluation (the numpy trainer's chunking)
DEVICE_DATA_FRACTION = 0.5  # a split goes to the GPU when it takes at most this much free memory
# Parameters of at least this many elements are updated inside the backward pass (where
# exact): an optimizer call per parameter costs tens of microseconds in torch, which a 64k
# gradient's memory is worth and a bias's is not.
FUSE_MIN_ELEMENTS = 1 << 16


class TorchTrainer:
    fuses = True  # may update parameters inside the backward pass (not under DDP)
    captures = True  # may record its step as a CUDA graph (not under DDP)

    def __init__(self, program: Any, params: Arrays, train: Any, seed: int) -> None:
        keep_freed_memory()  # CPU tensors' pages stay for the next step (graphspec.freed_memory)
        self.program = program
        self.ir = program.ir
        self.train = train
        self.seed = int(seed)
        self.device: torch.device = program.device
        self.dtype: torch.dtype = program.dtype
        self.model = program.new_model()
        self.model.load_params(params)
        self.generator = torch.Generator(self.device)
        self.model.generator = self.generator
        attrs = program.module.SPEC_NAMES
        self.named = {n: getattr(self.model, attrs[n]) for n in self.ir.params}
        self.captured = program.capture != capture.NONE
        if self.captured:
            self._check_capture(program.amp_dtype)
        self.optim = Optim(self.ir, train.optimizer, train.schedule, self.named,
                           capture.optimizer_options(train) if self.captured else None)
        self.params_list = list(self.named.values())
        # Parameters that never reach the loss get zero gradients, as in the numpy backend
        # (torch would skip them, and weight decay would then not touch them).
        path = Plan(self.ir).grad_path()
        self._unreached = [
            (p, torch.zeros_like(p)) for n, p in self.named.items() if n not in path
        ]
        self.amp_dtype = program.amp_dtype
        null = contextlib.nullcontext()  # reusable: no context object built per step
        self._autocast = (
            (lambda: null) if self.amp_dtype is None
            else (lambda: autocast(self.device, self.amp_dtype, cache=not self.captured))
        )
        self.scaler = (
            torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None
        )
        self._losses = self.model.losses
        if program.options.compile:
            self._losses = torch.compile(self.model.losses)
        self._again = self._losses  # FGSM's second pass in a step (a data-parallel subclass
        # sends the first through DistributedDataParallel, and only the first)
        # Keys added to the noise streams' (seed, purpose, epoch): () for a single process
        # and for rank 0, (rank,) for the other ranks of a data-parallel run.
        self.stream_keys: tuple[int, ...] = ()
        self.data: dict[str, dict[str, torch.Tensor]] = {}
        self.on_device: dict[str, bool] = {}
        self.noise: dict[str, torch.Tensor] | None = None
        self._norms: list[torch.Tensor] | None = None
        self.terms = [lid for lid, _ in self.ir.losses]
        # Parameters updated inside the backward pass (the large ones, where exact); the
        # rest by the optimizer's step after it, which skips those (their .grad is None).
        unreached = {id(p) for p, _ in self._unreached}
        self.fused = [
            n for n, p in self.named.items()
            if self._fused() and id(p) not in unreached and p.numel() >= FUSE_MIN_ELEMENTS
        ]
        self._fused_norms: dict[str, torch.Tensor] = {}
        self._record_norms = False
        for name in self.fused:
            self.named[name].register_post_accumulate_grad_hook(self._update_hook(name))
        self._run_step = self._graphed_step() if self.captured else self._step

    def _graphed_step(self) -> capture.GraphedStep:
        """The step recorded as a CUDA graph: it changes the parameters, the model's state
        buffers (batch norm's running statistics) and the optimizer's state in place."""
        return capture.GraphedStep(self._step, [*self.params_list, *self.model.buffers()],
                                   self.optim.opt)

    def _check_capture(self, amp_dtype: torch.dtype | None) -> None:
        """Refuse, before training, a step a CUDA graph cannot replay (capture.refusal)."""
        if not self.captures:
            raise BackendError(f"--capture {capture.CUDA_GRAPH} cannot record a data-parallel "
                               "step (it exchanges gradients between processes)",
                               hint="train without --capture")
        error = capture.refusal(self.ir, self.train, amp_dtype)
        if error is not None:
            raise error

    def _fused(self) -> bool:
        """Whether parameters are updated inside the backward pass as soon as their
        gradients are accumulated (``train.fused_update``): only where that is exact.  Not
        with clipping by the global norm, adversarial training or fp16's gradient scaling
        (they need every gradient first), not under DDP (gradients are averaged after they
        are accumulated), and not when an op reads a parameter's value where no gradient
        flows back (autograd would not order its backward before the update)."""
        t = self.train
        # Captured: the graph's own memory pool holds the step; hooks would only add launches.
        return (self.fuses and not self.captured and bool(t.fused_update)
                and t.clip_grad_norm is None
                and t.adversarial is None and self.scaler is None
                and not _reads_parameter_without_gradient(self.ir))

    def _update_hook(self, name: str) -> Any:
        def hook(p: torch.Tensor) -> None:
            if self._record_norms:  # the epoch's last step: what grad_norms() reports
                self._fused_norms[name] = p.grad.detach().norm()
            self.optim.step_one(p)
            p.grad = None  # the memory saved: one gradient at a time

        return hook

    # ---- data ----------------------------------------------------------------------------
    def set_data(self, split: str, arrays: Arrays) -> None:
        unused = unused_inputs(self.ir)  # nothing reads them: they need no data
        missing = [i for i in self.ir.inputs if i not in arrays and i not in unused]
        if missing:
            raise DataError(f"the {split} data lacks input(s) {', '.join(missing)}")
        tensors = self.program.to_tensors({i: arrays[i] for i in self.ir.inputs if i in arrays},
                                          True)
        rows = {len(t) for t in tensors.values()}
        if len(rows) != 1:
            raise DataError(f"the {split} data's inputs differ in length: {sorted(rows)}")
        fits = self._fits(sum(t.numel() * t.element_size() for t in tensors.values()))
        if not fits:
            tensors = {k: v.cpu().pin_memory() for k, v in tensors.items()}
        self.data[split] = tensors
        self.on_device[split] = fits

    def _fits(self, nbytes: int) -> bool:
        if self.device.type != "cuda":
            return True
        free, _ = torch.cuda.mem_get_info(self.device)
        return nbytes <= DEVICE_DATA_FRACTION * free

    def _take(self, split: str, index: torch.Tensor) -> dict[str, torch.Tensor]:
        data = self.data[split]
        if self.on_device[split]:
            return {k: v.index_select(0, index) for k, v in data.items()}
        return {
            k: v.index_select(0, index).pin_memory().to(self.device, non_blocking=True)
            for k, v in data.items()
        }

    def set_noise(self, arrays: Arrays | None) -> None:
        """Injected noise (by node id) for every following step; None samples natively."""
        self.noise = self.program.to_tensors(arrays) if arrays else None

    # ---- training ------------------------------------------------------------------------
    def train_epoch(self, batches: list[np.ndarray], epoch: int) -> dict[str, float]:
        if "train" not in self.data:
            raise DataError("train_epoch before set_data('train', ...)")
        if not batches:
            return {}
        self.model.train()
        self.generator.manual_seed(_seed(self.seed, seeds.NOISE, epoch, *self.stream_keys))
        sizes = [len(b) for b in batches]
        index_device = self.device if self.on_device["train"] else torch.device("cpu")
        flat = torch.from_numpy(np.concatenate(batches).astype(np.int64, copy=False))
        indices = torch.split(flat.to(index_device, non_blocking=True), sizes)
        n = len(batches)
        rows = []
        for step, index in enumerate(indices):
            self.optim.set_lr(epoch, step, n)
            self._record_norms = step == n - 1
            rows.append(self._run_step(self._take("train", index)))
        return self._epoch_summary(torch.stack(rows).cpu(), sizes, epoch)  # the one sync

    def _step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimizer step; returns [loss, *terms] on the device (no host sync)."""
        opt = self.optim.opt
        adv = self.train.adversarial
        if adv is not None:  # the input gradient of the clean pass crafts the FGSM examples
            batch = {**batch, adv.input: batch[adv.input].detach().requires_grad_(True)}
        with self._autocast():
            loss, terms = self._losses(batch, self.noise)
        if adv is not None:
            loss, terms = self._adversarial(batch, loss, terms)
        loss, record = self._objective(loss, terms)
        opt.zero_grad(set_to_none=True)
        for p, zero in self._unreached:
            p.grad = zero
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
        else:
            loss.backward()  # the hooks update the fused parameters
        clip = self.train.clip_grad_norm
        if clip is not None:
            grads = [p.grad for p in self.params_list if p.grad is not None]
            self._norms = list(torch._foreach_norm(grads)) if grads else []
            torch.nn.utils.clip_grad_norm_(self.params_list, clip)
        else:
            self._norms = None
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        return record.to(self.dtype)

    def _objective(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(what to differentiate, the step's record [loss, *terms]): the batch's loss here;
        a data-parallel trainer weighs its shard's share."""
        return loss, torch.stack([loss.detach(), *(t.detach() for t in terms.values())])

    def _adversarial(self, batch: dict[str, torch.Tensor], loss: torch.Tensor,
                     terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        """Adversarial training (graphspec.train.adversarial), as in the numpy trainer: the
        objective ``(1 - mix) L(x) + mix L(x + epsilon sign(dL/dx))``."""
        adv = self.train.adversarial
        x = batch[adv.input]
        # A scaled fp16 loss keeps small input gradients from flushing to zero; the sign is
        # all FGSM takes from them.  The objective, not the batch's loss: a data-parallel
        # rank's objective is its weighted share, whose input gradient (through batch
        # statistics shared by all ranks) points as the global batch's does.
        objective, _ = self._objective(loss, terms)
        scaled = self.scaler.scale(objective) if self.scaler is not None else objective
        (gx,) = torch.autograd.grad(scaled, x, retain_graph=True)
        x_adv = fgsm_example(x, gx, adv.epsilon, torch.sign).detach()
        with self._autocast():
            loss_a, terms_a = self._again({**batch, adv.input: x_adv}, self.noise)
        return mix(loss, loss_a, adv.mix), mix_each(terms, terms_a, adv.mix)

    def _epoch_summary(self, record: torch.Tensor, sizes: list[int], epoch: int
                       ) -> dict[str, float]:
        finite = torch.isfinite(record).all(dim=1)
        if not bool(finite.all()):
            step = int((~finite).nonzero()[0])
            loss = float(record[step, 0])
            raise NonFiniteLoss(
                f"loss is {loss} at epoch {epoch + 1}, step {step + 1} (the torch backend "
                "checks once per epoch: the parameters have taken the later steps too)",
                epoch, step,
            )
        w = torch.tensor(sizes, dtype=record.dtype)
        means = (record * w[:, None]).sum(0) / w.sum()
        return dict(zip(["loss", *self.terms], means.tolist()))

    # ---- evaluation ----------------------------------------------------------------------
    def evaluate(self, split: str) -> dict[str, float]:
        n = self.rows(split)
        if n == 0:
            return {}
        return dict(zip(self.eval_names, (self._eval_sums(split, 0, n) / n).tolist()))

    def rows(self, split: str) -> int:
        return len(next(iter(self.data[split].values())))

    @property
    def eval_names(self) -> list[str]:
        return ["loss", *self.terms, *self.ir.metrics]

    def _eval_sums(self, split: str, lo: int, hi: int) -> torch.Tensor:
        """Rows ``lo:hi``' loss, terms and metrics, each summed over the rows (float64, on
        the host): every one is a mean over rows, so chunks (and ranks) add up."""
        data = self.data[split]
        self.model.eval()
        self.generator.manual_seed(_seed(self.seed, seeds.EVAL, *self.stream_keys))
        total = torch.zeros(len(self.eval_names), dtype=torch.float64, device=self.device)
        with torch.no_grad(), self._autocast():
            for start in range(lo, hi, EVAL_CHUNK):
                stop = min(start + EVAL_CHUNK, hi)
                x = {k: v[start:stop].to(self.device, non_blocking=True)
                     for k, v in data.items()}
                loss, terms, metrics, _ = self.model.evaluate(x, None)
                values = torch.stack([loss, *terms.values(), *metrics.values()])
                total += values.to(torch.float64) * (stop - start)
        return total.cpu()  # the one sync

    # ---- parameters and state ------------------------------------------------------------
    def params(self) -> Arrays:
        # Copies: on the CPU .numpy() would share memory with the live parameters.
        return {
            k: v.detach().to(torch.float64).cpu().numpy().copy()
            for k, v in self.model.spec_state_dict().items()
        }

    def load_params(self, arrays: Arrays) -> None:
        self.model.load_params(arrays)

    def state_dict(self) -> Arrays:
        out = self.optim.state_dict()
        if self.scaler is not None:
            sd = self.scaler.state_dict()
            out["torch/grad_scale"] = np.array(sd.get("scale", 1.0), dtype=np.float64)
            out["torch/growth_tracker"] = np.array(sd.get("_growth_tracker", 0), dtype=np.int64)
        return out

    def load_state_dict(self, state: Arrays) -> None:
        own = {k: v for k, v in state.items() if k.startswith("torch/")}
        self.optim.load_state_dict({k: v for k, v in state.items() if k not in own})
        if isinstance(self._run_step, capture.GraphedStep):
            self._run_step.forget()  # its graphs read the state tensors just replaced
        if self.scaler is not None and "torch/grad_scale" in own:
            sd = self.scaler.state_dict()
            sd["scale"] = float(own["torch/grad_scale"])
            sd["_growth_tracker"] = int(own.get("torch/growth_tracker", 0))
            self.scaler.load_state_dict(sd)

    def grad_norms(self) -> dict[str, float]:
        """Each parameter's gradient norm at the last step (before clipping, when clipped)."""
        if self._norms is not None:
            have = [n for n, p in self.named.items() if p.grad is not None]
            values = torch.stack(self._norms).tolist() if self._norms else []
            return dict(zip(have, values))
        norms = {
            n: self._fused_norms[n] if n in self._fused_norms else p.grad.detach().norm()
            for n, p in self.named.items() if p.grad is not None or n in self._fused_norms
        }  # fused parameters: what the hooks kept at the epoch's last step
        if not norms:
            return {}
        return dict(zip(norms, torch.stack(list(norms.values())).tolist()))


def _seed(seed: int, purpose: int, *keys: int) -> int:
    """A torch seed from graphspec's per-purpose streams (63 bits: torch takes a signed int)."""
    return int(seeds.stream(seed, purpose, *keys).integers(0, 2**63 - 1))


def _reads_parameter_without_gradient(ir: Any) -> bool:
    """Whether an op reads a parameter's value, or a value computed from one, through an
    argument no gradient flows back through (``stop_gradient``, say): autograd orders that
    op's backward only by its differentiable inputs, so it may run after the parameter's
    last gradient and find a saved value changed in place by the update."""
    downstream = set(ir.params)
    for nid in ir.order:
        node = ir.node(nid)
        if not isinstance(node, OpNode):
            continue
        if any(a in downstream for a in node.inputs):
            downstream.add(nid)
            if any(a in downstream and not flag
                   for a, flag in zip(node.inputs, node.grad_flags)):
                return True
    return False
