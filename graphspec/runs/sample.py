"""Text from a trained character model: ``graphspec sample RUN_DIR`` and the lines
``graphspec train`` prints after training on a ``text`` source.

A character model is a run whose ``summary.json`` records the ``vocabulary`` of its text
(graphspec.train.data), whose one feature input takes token ids ``[batch, T]`` (or one-hot
rows ``[batch, T, V]``) and whose output is read by ``cross_entropy`` or ``nll``: class
scores per step (``[batch, T, V]``, the classes on the loss's class axis) or for the
character after the window (``[batch, V]``).

Sampling is autoregressive on the compiled Program's forward (either backend): the model
reads the last ``window`` characters (the length of the training windows: it never saw
longer contexts), the next character is drawn from the softmax of the last step's scores
divided by the temperature (temperature 0: the most likely one), appended, and so on.
Draws come from a generator seeded with ``seed``, so a run, a seed and a backend give the
same text every time.

    from graphspec.runs.run import load_run
    from graphspec.runs.sample import sample_text
    print(sample_text(load_run("runs/char-lstm/1"), length=200, prime="The "))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphspec.errors import GraphspecError, Location
from graphspec.ir.node import OpNode
from graphspec.runs.run import Run, classifier_outputs
from graphspec.threads import Threads
from graphspec.train.data import input_roles
from graphspec.train.runlog import SUMMARY
from graphspec.train.runspec import SPEC

SAMPLES = "samples.txt"  # what `graphspec train` writes into a character model's run
DEFAULT_LENGTH = 300
DEFAULT_TEMPERATURE = 0.8
# Without a prime the model starts as at the beginning of a line; the newline is context,
# not part of the sample.
LINE_START = "\n"


@dataclass(frozen=True)
class CharModel:
    """What sampling needs to know of a run's model."""

    input: str  # the feature input
    output: str  # the class scores of the next character (at every step, or the last)
    vocabulary: str  # token id i is vocabulary[i]
    window: int  # characters the model reads at once
    fixed_window: bool  # the input's time axis is declared a number: exactly ``window``
    one_hot: bool  # a float input of one-hot rows, not token ids
    class_axis: int  # of the output, non-negative


def is_char_model(run: Run) -> bool:
    """Whether the run was trained on a text (its summary records the vocabulary)."""
    vocabulary = run.summary.get("vocabulary")
    return isinstance(vocabulary, str) and bool(vocabulary)


def char_model(run: Run) -> CharModel:
    """The run's character model, or one error saying why the run cannot be sampled."""
    if not is_char_model(run):
        raise GraphspecError(
            f"{run.path} was not trained on a text: its {SUMMARY} records no vocabulary",
            Location(str(run.path / SUMMARY)),
            hint="sample from a run of a spec whose train.data has 'source: text'",
        )
    vocabulary = str(run.summary["vocabulary"])
    ir = run.ir
    features, _ = input_roles(ir)
    x = ir.type(features[0]) if len(features) == 1 else None
    one_hot = x is not None and x.dtype == "float" and x.rank == 3
    if x is None or not (x.dtype == "int" and x.rank == 2 or one_hot):
        raise GraphspecError(
            f"{run.path}: sampling needs one input of token ids [batch, T] (or one-hot rows "
            f"[batch, T, V]); the model has feature inputs {features}",
            Location(str(run.path / SPEC)),
        )
    output, class_axis = _next_char_scores(run, len(vocabulary))
    time = x.shape[1]
    data = run.spec.train.data if run.spec.train is not None else None
    window = data.length if data is not None and data.length else time
    assert isinstance(window, int)  # the text source ran with this length
    return CharModel(
        features[0], output, vocabulary, window, isinstance(time, int), one_hot, class_axis
    )


def _next_char_scores(run: Run, vocab: int) -> tuple[str, int]:
    """The output a class loss reads with ``vocab`` classes, at every step or for the next
    character only, and its class axis."""
    ir = run.ir
    for name, kind in classifier_outputs(ir).items():
        if kind not in ("softmax", "log_softmax"):
            continue
        node = ir.outputs[name]
        t = ir.type(node)
        for _, consumer in ir.graph.out_edges(node):
            loss = ir.node(consumer)
            if isinstance(loss, OpNode) and loss.inputs[0] == node and t.rank in (2, 3):
                axis = int(loss.attrs.class_axis(t))  # type: ignore[attr-defined]
                if axis != 0 and t.shape[axis] == vocab:
                    return name, axis
    raise GraphspecError(
        f"{run.path}: sampling needs an output of {vocab} class scores per step "
        f"([batch, T, {vocab}]) or for the next character ([batch, {vocab}]) that "
        "cross_entropy or nll reads",
        Location(str(run.path / SPEC)),
    )


def sample_text(
    run: Run,
    *,
    length: int = DEFAULT_LENGTH,
    temperature: float = DEFAULT_TEMPERATURE,
    prime: str | None = None,
    seed: int = 0,
    checkpoint: str = "best",
    backend: str | None = None,
    device: str = "auto",
    threads: Threads | None = None,
) -> str:
    """``prime`` followed by ``length`` characters the model draws (without a prime it
    starts after a newline, or its vocabulary's first character when the text has none)."""
    if length < 0:
        raise GraphspecError(f"the sample length must be at least 0, not {length}")
    if not (temperature >= 0 and np.isfinite(temperature)):
        raise GraphspecError(f"the temperature must be a number >= 0, not {temperature}")
    model = char_model(run)
    index = {c: i for i, c in enumerate(model.vocabulary)}
    context = prime if prime else _start(model.vocabulary)
    unknown = sorted({c for c in context if c not in index})
    if unknown:
        raise GraphspecError(
            f"the prime holds {_listing(unknown)}, not in the run's vocabulary of "
            f"{len(index)} characters",
            hint=f"use only these characters: {model.vocabulary!r}",
        )
    if model.fixed_window and len(context) < model.window:
        raise GraphspecError(
            f"the model reads exactly {model.window} characters at a time; the prime has "
            f"{len(context)}",
            hint=f"give a prime of at least {model.window} characters",
        )
    params = run.checkpoint_params(checkpoint)
    program = run.program(backend, device)
    rng = np.random.default_rng(seed)
    ids = [index[c] for c in context]
    drawn: list[int] = []
    with run.computing(threads, backend, 1):  # one sequence per pass
        for _ in range(length):
            window = np.asarray([ids[-model.window :]], dtype=np.int64)
            x = np.eye(len(index))[window] if model.one_hot else window
            scores = np.asarray(program.forward(params, {model.input: x})[model.output])
            last = np.moveaxis(scores[0], model.class_axis - 1, -1)  # [T, V] or [V]
            if last.ndim == 2:
                last = last[-1]
            ids.append(_draw(last.astype(np.float64), temperature, rng))
            drawn.append(ids[-1])
    return (prime or "") + "".join(model.vocabulary[i] for i in drawn)


def as_lines(text: str) -> str:
    """``text`` as a text file holds it (and a terminal shows it): ending in a newline."""
    return text if text.endswith("\n") else text + "\n"


def _start(vocabulary: str) -> str:
    return LINE_START if LINE_START in vocabulary else vocabulary[0]


def _draw(scores: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """A class drawn from softmax(scores / temperature); the best one at temperature 0.
    (Log-probabilities, what nll reads, give the same distribution.)"""
    if temperature == 0:
        return int(np.argmax(scores))
    z = scores / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def _listing(chars: list[str]) -> str:
    shown = ", ".join(repr(c) for c in chars[:10])
    return shown + (f" and {len(chars) - 10} more" if len(chars) > 10 else "")
