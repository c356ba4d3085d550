"""Arrays given to a compiled program are checked against the spec's inputs, on every backend.

``Program.forward``, ``evaluate`` and ``loss_and_grads`` raise one :class:`InputError` (a
GraphspecError, so the CLI prints it as a diagnostic) naming the input and its declared and
actual shape: no silently wrong shapes, raw numpy errors or bare KeyErrors.  Trainers do not
check per step (their data was fitted when loaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import graphspec as gs
from graphspec.errors import GraphspecError, InputError

SPEC = """\
graphspec: 1
name: inputs
inputs:
  x: [batch, 3]
  seq: [batch, time, 2]
  y: {shape: [batch], dtype: int}
  unused: [batch, 5]
graph:
  - {id: pooled, op: mean, in: seq, axis: 1}
  - {id: both, op: concat, in: [x, pooled]}
  - {id: logits, op: linear, in: both, units: 4}
outputs: [logits]
loss:
  - {op: cross_entropy, in: [logits, y]}
train:
  data: {source: blobs}
"""
BACKENDS = ["numpy", "torch"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = Path(tmp_path_factory.mktemp("spec")) / "inputs.yaml"
    path.write_text(SPEC)
    ir = gs.build(gs.load(path))
    params = gs.init_params(ir, 0)
    return {"path": path, "params": params, **{b: gs.compile(ir, backend=b) for b in BACKENDS}}


def good(n: int = 4, t: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x": rng.normal(size=(n, 3)),
        "seq": rng.normal(size=(n, t, 2)),
        "y": rng.integers(0, 4, size=n),
    }


def call(compiled: dict[str, Any], backend: str, method: str, inputs: Any) -> Any:
    prog = compiled[backend]
    return getattr(prog, method)(compiled["params"], inputs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_good_inputs_pass_and_unread_inputs_may_be_left_out(compiled, backend) -> None:
    x = good()
    out = call(compiled, backend, "forward", {"x": x["x"], "seq": x["seq"]})  # no target
    assert out["logits"].shape == (4, 4)
    res = call(compiled, backend, "loss_and_grads", x)  # no 'unused'
    assert np.isfinite(res.loss)
    res = call(compiled, backend, "evaluate", {**x, "unused": np.zeros((4, 5))})
    assert np.isfinite(res.loss)
    lists = {k: v.tolist() for k, v in x.items()}  # nested lists are arrays too
    assert np.isclose(call(compiled, backend, "loss_and_grads", lists).loss, res.loss)


CASES = [
    # (method, change to the good inputs, message, hint or None)
    (
        "forward",
        {"x": np.ones(3)},
        r"input 'x' is declared \[batch, 3\] \(rank 2\) but has shape \(3,\)",
        "x[None]",
    ),
    (
        "forward",
        {"x": np.ones((4, 5))},
        r"input 'x' is declared \[batch, 3\] but has shape \(4, 5\): axis 1 has size 5, not 3",
        None,
    ),
    (
        "loss_and_grads",
        {"y": None},
        r"input 'y' is missing: loss_and_grads needs it for the "
        r"loss \(declared \[batch\] int\)",
        None,
    ),
    ("evaluate", {"seq": None}, "input 'seq' is missing: evaluate needs it", None),
    (
        "evaluate",
        {"y": np.zeros(5, dtype=int)},
        r"input 'y' is declared \[batch\] int but has shape \(5,\): its 'batch' axis has size 5, "
        r"while input 'x' has 4",
        "same size",
    ),
    (
        "loss_and_grads",
        {"y": np.zeros(4)},
        r"input 'y' is declared \[batch\] int but holds floats",
        "np.asarray(y, dtype=np.int64)",
    ),
    ("forward", {"x": np.full((4, 3), "a")}, r"input 'x' .* but holds strings", None),
    ("forward", {"x": np.ones((4, 3)) * 1j}, "holds complex numbers", None),
    ("forward", {"X": np.ones((4, 3))}, "'X' is not an input of 'inputs'", "did you mean 'x'"),
    ("forward", {"seqs": np.ones((4, 2, 2))}, "'seqs' is not an input", "did you mean 'seq'"),
    ("forward", {"unused": np.ones((4, 6))}, "input 'unused' is declared", None),
    ("forward", {"x": [[1.0, 2.0, 3.0], [1.0]]}, "input 'x' is not an array", None),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method, change, message, hint", CASES)
def test_bad_inputs_are_one_clear_error(compiled, backend, method, change, message, hint) -> None:
    inputs: dict[str, Any] = good()
    for k, v in change.items():
        if v is None:
            del inputs[k]
        else:
            inputs[k] = v
    with pytest.raises(InputError, match=message) as e:
        call(compiled, backend, method, inputs)
    assert isinstance(e.value, GraphspecError)
    if hint:
        assert hint in (e.value.hint or "")
    rendered = e.value.render()
    if "is declared" in e.value.message or "is missing" in e.value.message:
        name = e.value.message.split("'")[1]  # the note points at the declaration
        assert f"{compiled['path']}:" in rendered and f"input '{name}' is declared here" in rendered


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_must_be_a_mapping(compiled, backend) -> None:
    with pytest.raises(InputError, match="inputs must be a dict of arrays by input name, not list"):
        call(compiled, backend, "forward", [np.ones((4, 3))])


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_steps_do_not_check_inputs(compiled, backend, monkeypatch) -> None:
    """The check runs at the API's entry points, never in a trainer's step."""
    prog = compiled[backend]
    spec = gs.load(compiled["path"])
    trainer = prog.trainer(compiled["params"], spec.train, 0)
    data = good(8)
    trainer.set_data("train", data)

    def refuse(*args: Any) -> None:
        raise AssertionError("a training step checked its inputs")

    monkeypatch.setattr(prog, "check_inputs", refuse)
    stats = trainer.train_epoch([np.arange(4), np.arange(4, 8)], 0)
    assert np.isfinite(stats["loss"])
    assert np.isfinite(trainer.evaluate("train")["loss"])
