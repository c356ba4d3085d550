"""``--threads N|auto`` (graphspec.threads): honoured inside the training step of both
backends and restored afterwards, the auto rule, and the command line's refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from paths import XOR
from threadpoolctl import threadpool_info, threadpool_limits

import graphspec as gs
from graphspec import threads
from graphspec.cli import main
from graphspec.runs import sweep
from graphspec_numpy.trainer import NumpyTrainer
from graphspec_torch.trainer import TorchTrainer


def _blas_threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def _seen_in_step(monkeypatch: pytest.MonkeyPatch, cls: type, probe: Any) -> list[Any]:
    """What ``probe()`` returns inside each ``train_epoch`` of ``cls`` from now on."""
    seen: list[Any] = []
    original = cls.train_epoch

    def train_epoch(self: Any, *args: Any) -> Any:
        seen.append(probe())
        return original(self, *args)

    monkeypatch.setattr(cls, "train_epoch", train_epoch)
    return seen


@pytest.mark.parametrize("count", [1, 2])
def test_numpy_backend_computes_with_the_threads_asked_for(
    count: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _seen_in_step(monkeypatch, NumpyTrainer, _blas_threads)
    with threadpool_limits(limits=3):  # neither 1 nor 2: what the run must put back
        before = _blas_threads()
        gs.train(XOR, out=tmp_path / "run", epochs=2, progress=False, threads=count)
        after = _blas_threads()
    assert seen and all(s == {count} for s in seen), seen
    assert after == before == {3}


@pytest.mark.parametrize("count", [1, 2])
def test_torch_backend_computes_with_the_threads_asked_for(
    count: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _seen_in_step(monkeypatch, TorchTrainer, torch.get_num_threads)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        gs.train(
            XOR,
            backend="torch",
            device="cpu",
            out=tmp_path / "run",
            epochs=2,
            progress=False,
            threads=count,
        )
        assert torch.get_num_threads() == 3  # restored
    finally:
        torch.set_num_threads(before)
    assert seen and all(s == count for s in seen), seen


@pytest.mark.parametrize("asked", [None, "auto"])
def test_auto_takes_one_thread_for_a_tiny_model_and_says_why(
    asked: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Left out or asked for, the rule chooses; summary.json keeps the choice and why, and
    ``auto`` asked for says them on stderr too (as --backend auto does)."""
    monkeypatch.setattr(threads, "cores", lambda: 8)  # as on a large idle machine
    seen = _seen_in_step(monkeypatch, TorchTrainer, torch.get_num_threads)
    run = gs.train(
        XOR, backend="torch", device="cpu", out=tmp_path / "run", epochs=1, threads=asked
    )
    assert seen == [1]
    assert run.info["threads"] == 1
    assert "FLOPs per training step, at most" in run.info["threads_reason"]
    err = capsys.readouterr().err
    said = "note: threads auto: 1 (" + run.info["threads_reason"] + ")" in err
    assert said == (asked == "auto")


def test_the_command_line_says_the_choice_of_auto(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(XOR), "--threads", "auto", "--out", str(tmp_path / "a")]) == 0
    assert "note: threads auto: 1 (" in capsys.readouterr().err
    assert main(["train", str(XOR), "--out", str(tmp_path / "b")]) == 0
    assert "threads" not in capsys.readouterr().err


def test_a_thread_count_given_is_recorded(tmp_path: Path) -> None:
    run = gs.train(XOR, out=tmp_path / "run", epochs=1, threads=2, progress=False)
    assert (run.info["threads"], run.info["threads_reason"]) == (2, "given")


def test_auto_rule() -> None:
    limit = threads.ONE_THREAD_MAX_FLOPS
    assert threads.choose(100_000, 8).threads == 1
    assert threads.choose(limit, 8).threads == 1
    assert threads.choose(limit + 1, 8).threads == 8
    assert threads.choose(100 * limit, 2).threads == 2
    assert threads.choose(100 * limit, 1).threads == 1  # no core to spare


def test_cores_follow_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what --nproc gives each worker
    assert threads.cores() == 1


@pytest.mark.parametrize(("load", "free"), [(0.2, 4), (1.6, 2), (3.4, 1), (9.0, 1)])
def test_cores_are_the_idle_ones(load: float, free: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    monkeypatch.setattr("os.getloadavg", lambda: (load, 0.0, 0.0), raising=False)
    assert threads.cores() == free


@pytest.mark.parametrize("bad", ["0", "-1", "x", "1.5"])
def test_bad_thread_counts_are_refused(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(XOR), "--threads", bad]) == 2
    err = capsys.readouterr().err
    assert "--threads" in err and "expected a positive number of threads or 'auto'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("bad", [0, -1, "x", 1.5, True])
def test_bad_thread_counts_are_refused_in_python(bad: Any) -> None:
    with pytest.raises(ValueError, match="threads must be a positive integer or 'auto'"):
        gs.train(XOR, threads=bad)


def test_explicit_threads_times_workers_beyond_the_cores_are_noted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    threads.warn_oversubscribed(2, 2)
    assert "2 processes with 2 threads each on 2 cores" in capsys.readouterr().err
    threads.warn_oversubscribed(1, 2)
    threads.warn_oversubscribed(threads.AUTO, 4)
    assert capsys.readouterr().err == ""


class _Finished:
    """A member process that has already ended well (what sweep.run polls)."""

    returncode = 0

    def __init__(self, cmd: list[str], env: dict[str, str], **_: Any) -> None:
        _Finished.seen.append((cmd, env))

    def poll(self) -> int:
        return 0

    seen: list[tuple[list[str], dict[str, str]]] = []


@pytest.mark.parametrize(("jobs", "share"), [(1, None), (2, "2"), (8, "1")])
def test_sweep_members_running_together_share_the_cores(
    jobs: int, share: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    monkeypatch.setattr(sweep.subprocess, "Popen", _Finished)
    _Finished.seen = []
    members = sweep.members([sweep.parse_grid("seed=1,2")], tmp_path)
    sweep.run(str(XOR), members, ["--threads", "auto"], jobs)
    assert [m.status for m in members] == ["ok", "ok"]
    for cmd, env in _Finished.seen:
        assert cmd[cmd.index("--threads") + 1] == "auto"
        assert env.get("OMP_NUM_THREADS") == share


# ---- predict and evaluate (sample: tests/train/test_sample.py) ------------------------------


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("xor") / "run"
    gs.train(XOR, out=out, epochs=2, progress=False)
    return out


def _seen_in(monkeypatch: pytest.MonkeyPatch, obj: Any, name: str, probe: Any) -> list[Any]:
    """What ``probe()`` returns inside each call of ``obj.name`` from now on."""
    seen: list[Any] = []
    original = getattr(obj, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        seen.append(probe())
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapped)
    return seen


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_predict_and_evaluate_compute_with_the_threads_asked_for(
    backend: str, xor_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = gs.load_run(xor_run)
    probe = torch.get_num_threads if backend == "torch" else _blas_threads
    want = 2 if backend == "torch" else {2}
    program = run.program(backend, "cpu")
    seen = _seen_in(monkeypatch, program, "forward", probe)
    trainer_cls = TorchTrainer if backend == "torch" else NumpyTrainer
    evaluated = _seen_in(monkeypatch, trainer_cls, "evaluate", probe)
    torch_before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with threadpool_limits(limits=3):
            run.predict(_xor_features(), backend=backend, device="cpu", batch_size=2, threads=2)
            run.evaluate(_xor_labelled(), backend=backend, device="cpu", threads=2)
            after = (_blas_threads(), torch.get_num_threads())
    finally:
        torch.set_num_threads(torch_before)
    assert len(seen) >= 3 and all(s == want for s in seen), seen  # 2 passes of 2 rows, + 1
    assert evaluated == [want]
    assert after == ({3}, 3)  # put back


def test_predict_auto_says_its_choice_and_bad_counts_are_refused(
    xor_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    data = tmp_path / "x.npz"
    np.savez(data, x=_xor_features())
    assert main(["predict", str(xor_run), "--data", str(data), "--threads", "auto"]) == 0
    err = capsys.readouterr().err
    assert "note: threads auto: 1 (" in err and "FLOPs per training step" in err
    for command in (
        ["predict", str(xor_run), "--data", str(data)],
        ["evaluate", str(xor_run), "--data", str(data)],
        ["sample", str(xor_run)],
    ):
        assert main([*command, "--threads", "0"]) == 2
        err = capsys.readouterr().err
        assert "expected a positive number of threads or 'auto', got 0" in err
        assert "Traceback" not in err


def _xor_features() -> Any:
    import numpy as np

    return np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def _xor_labelled() -> dict[str, Any]:
    import numpy as np

    return {"x": _xor_features(), "y": np.array([[0.0], [1.0], [1.0], [0.0]])}
