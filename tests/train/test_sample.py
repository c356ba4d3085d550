"""Sampling text from a character model (graphspec.runs.sample, ``graphspec sample``, and the
sample ``graphspec train`` prints for a run trained on a ``text`` source)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import graphspec as gs
from graphspec.cli import main
from graphspec.errors import GraphspecError
from graphspec.runs.run import load_run
from graphspec.runs.sample import SAMPLES, as_lines, sample_text

# A text whose next character is always decided by the one before: a trained model's most
# likely continuation of any prime is the cycle itself.  Its period (7) is not the windows'
# length (8), so each character is seen at every position of a window.
CYCLE = "abcdefg"
TEXT = CYCLE * 46


def char_spec(
    folder: Path,
    x: str = "{shape: [batch, time], dtype: int}",
    y: str = "{shape: [batch, time], dtype: int}",
    graph: str = "- {id: embed, op: embedding, in: x, vocab: 7, dim: 8}\n"
    "  - {id: rnn, op: lstm, units: 16, returns: sequences}",
    epochs: int = 30,
) -> Path:
    (folder / "t.txt").write_text(TEXT, encoding="utf-8")
    path = folder / "spec.yaml"
    path.write_text(
        "graphspec: 1\nname: tiny-chars\nseed: 1\ninputs:\n"
        f"  x: {x}\n  y: {y}\n"
        f"graph:\n  {graph}\n  - {{id: logits, op: linear, units: 7}}\n"
        "outputs: [logits]\nloss:\n  - {op: cross_entropy, in: [logits, y]}\n"
        "train:\n  data: {source: text, path: t.txt, length: 8, val_split: 0}\n"
        f"  optimizer: {{name: adam, lr: 0.05}}\n  epochs: {epochs}\n  batch_size: 8\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chars")
    out = folder / "run"
    gs.train(char_spec(folder), backend="numpy", out=out, progress=False)
    return out


def test_a_trained_model_continues_the_text(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert sample_text(run, prime="cd", length=12, temperature=0) == "cd" + "efgabcdefgab"
    # without a prime (the text has no newline: its first character starts the model)
    assert sample_text(run, length=8, temperature=0) == "bcdefgab"


def test_samples_are_reproducible_and_use_only_the_vocabulary(run_dir: Path) -> None:
    run = load_run(run_dir)
    hot = {"length": 200, "temperature": 5.0, "prime": "g"}  # far from the cycle
    first = sample_text(run, seed=3, **hot)
    assert first == sample_text(run, seed=3, **hot)
    assert first != sample_text(run, seed=4, **hot)
    assert len(first) == 201 and first[0] == "g" and set(first) <= set(CYCLE)
    assert set(first) == set(CYCLE)  # at temperature 5 every character comes up


def test_both_backends_draw_the_same_text(run_dir: Path) -> None:
    pytest.importorskip("torch")
    run = load_run(run_dir)
    kw = {"length": 20, "temperature": 2.0, "seed": 7, "prime": "aa"}
    assert sample_text(run, backend="torch", **kw) == sample_text(run, backend="numpy", **kw)


def test_the_window_is_the_training_length(run_dir: Path, monkeypatch) -> None:
    """The model reads at most the last 8 characters, the length of its training windows."""
    run = load_run(run_dir)
    program = run.program()
    seen: list[int] = []
    forward = program.forward

    def spy(params, inputs, **kw):
        seen.append(inputs["x"].shape[1])
        return forward(params, inputs, **kw)

    monkeypatch.setattr(program, "forward", spy)
    sample_text(run, prime="abcde", length=6)
    assert seen == [5, 6, 7, 8, 8, 8]


def test_prime_outside_the_vocabulary_is_one_error(run_dir: Path, capsys) -> None:
    with pytest.raises(GraphspecError, match=r"the prime holds 'z', 'é', not in the run's "):
        sample_text(load_run(run_dir), prime="abzé")
    assert main(["sample", str(run_dir), "--prime", "xyz"]) == 1
    err = capsys.readouterr().err
    assert "the prime holds 'x', 'y', 'z'" in err and "Traceback" not in err


def test_a_run_without_a_text_cannot_be_sampled(tmp_path: Path, capsys) -> None:
    xor = Path(__file__).parents[2] / "specs" / "xor.yaml"
    gs.train(xor, backend="numpy", out=tmp_path / "xor", epochs=1, progress=False)
    assert main(["sample", str(tmp_path / "xor")]) == 1
    err = capsys.readouterr().err
    assert "was not trained on a text: its summary.json records no vocabulary" in err
    assert "Traceback" not in err


def test_bad_command_lines(run_dir: Path, capsys) -> None:
    assert main(["sample", str(run_dir), "--temperature", "-1"]) == 2
    assert main(["sample", str(run_dir), "--temperature", "nan"]) == 2
    assert main(["sample", str(run_dir), "--length", "-3"]) == 2
    assert main(["sample", str(run_dir / "nothing")]) == 1
    assert "is not a run directory" in capsys.readouterr().err


def test_the_command_prints_the_sample(run_dir: Path, capsys) -> None:
    assert (
        main(["sample", str(run_dir), "--prime", "ab", "--length", "6", "--temperature", "0"]) == 0
    )
    assert capsys.readouterr().out == "abcdefga\n"


def test_train_prints_and_keeps_a_sample(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", str(char_spec(tmp_path, epochs=2)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    kept = (out / SAMPLES).read_text(encoding="utf-8")
    seed = json.loads((out / "summary.json").read_text())["seed"]
    assert kept == as_lines(sample_text(load_run(out), seed=seed))  # the run's seed, defaults
    assert f"sample (more with: graphspec sample {out}):\n{kept}" in printed


def test_one_hot_inputs_and_fixed_windows(tmp_path: Path) -> None:
    """A float input of one-hot rows is fed one-hot rows; a time axis declared a number
    needs a prime as long as the windows."""
    spec = char_spec(
        tmp_path,
        x="[batch, 8, 7]",
        y="{shape: [batch, 8], dtype: int}",
        graph="- {id: rnn, op: lstm, in: x, units: 16, returns: sequences}",
        epochs=40,
    )
    gs.train(spec, backend="numpy", out=tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    assert sample_text(run, prime="cdefgabc", length=4, temperature=0) == "cdefgabcdefg"
    with pytest.raises(
        GraphspecError, match="reads exactly 8 characters at a time; the prime has 3"
    ):
        sample_text(run, prime="abc")


def test_a_model_of_the_next_character_only(tmp_path: Path, capsys) -> None:
    """Scores for the character after the window alone ([batch, V]) sample too; a model
    without class scores of the vocabulary's size is refused."""
    spec = char_spec(
        tmp_path,
        x="{shape: [batch, 8], dtype: int}",
        y="{shape: [batch], dtype: int}",
        graph="- {id: embed, op: embedding, in: x, vocab: 7, dim: 4}\n  - {id: flat, op: flatten}",
        epochs=40,
    )
    gs.train(spec, backend="numpy", out=tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    assert sample_text(run, prime="defgabcd", length=5, temperature=0) == "defgabcdefgab"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    summary["vocabulary"] = "abcdefgh"  # a text of 8 characters: the model has 7 classes
    (tmp_path / "run" / "summary.json").write_text(json.dumps(summary))
    assert main(["sample", str(tmp_path / "run"), "--prime", "abcdefgh"]) == 1
    err = capsys.readouterr().err
    assert "sampling needs an output of 8 class scores per step ([batch, T, 8]) or for" in err


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sampling_computes_with_the_threads_asked_for(
    run_dir: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    run = load_run(run_dir)
    program = run.program(backend, "cpu")
    seen: list[object] = []
    forward = program.forward

    def probe(*args, **kwargs):  # type: ignore[no-untyped-def]
        if backend == "torch":
            import torch

            seen.append(torch.get_num_threads())
        else:
            seen.append({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
        return forward(*args, **kwargs)

    monkeypatch.setattr(program, "forward", probe)
    with threadpool_limits(limits=3):
        sample_text(run, prime="ab", length=3, backend=backend, device="cpu", threads=2)
    assert seen and all(s == (2 if backend == "torch" else {2}) for s in seen), seen
