"""The bad-input corpus: every file in tests/spec/bad_specs/ gets its located, clear error.

Each corpus file starts with comment lines that say what it must produce::

    # a misspelt op attribute                 <- what the case is about
    # run: validate --max-params 100 FILE     <- optional; default "validate FILE"
                                              (OUT: a fresh directory for train's run)
    # expect: 10:32 unknown key 'unist'       <- line:col ("-" for none) and a message fragment
    # hint: did you mean 'units'?             <- optional: a fragment of the hint line
    # exit: 2                                 <- optional; default 1

Files that cannot carry comments (an empty file) have their expectation in NO_HEADER.
The header lines count: locations are those of the file as it stands.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from paths import XOR

from graphspec.cli import main

CORPUS = Path(__file__).parent / "bad_specs"
NO_HEADER = {"empty.yaml": ("1:1", "the file is empty")}


@dataclass
class Case:
    path: Path
    argv: list[str]
    loc: str
    fragment: str
    hint: str | None
    exit: int


def read_case(path: Path, out_dir: Path | None = None) -> Case:
    directives: dict[str, str] = {}
    for raw in path.read_bytes().split(b"\n"):
        if not raw.startswith(b"#"):
            break
        m = re.match(r"# (run|expect|hint|exit): ?(.*)", raw.decode("utf-8", "replace"))
        if m:
            directives[m[1]] = m[2].strip()
    if path.name in NO_HEADER:
        loc, fragment = NO_HEADER[path.name]
    else:
        assert "expect" in directives, f"{path.name} has no '# expect:' line"
        loc, _, fragment = directives["expect"].partition(" ")
    substitute = {"FILE": str(path), "OUT": str(out_dir or path.parent / "runs")}
    argv = [substitute.get(a, a) for a in shlex.split(directives.get("run", "validate FILE"))]
    return Case(path, argv, loc, fragment, directives.get("hint"), int(directives.get("exit", 1)))


CASES = sorted(CORPUS.glob("*.yaml"))


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_spec(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = read_case(path, tmp_path / "run")
    start = time.perf_counter()
    rc = main(case.argv)
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert rc == case.exit, err
    assert "Traceback" not in out + err
    assert "internal error" not in err
    headline = err.splitlines()[0]
    where = str(path) if case.loc == "-" else f"{path}:{case.loc}"
    assert headline.startswith(f"{where}: error: "), f"wanted {where}, got:\n{err}"
    assert case.fragment in headline, err
    if case.hint:
        assert any(line.startswith("hint: ") and case.hint in line for line in err.splitlines()), (
            err
        )
    # Each is refused before any real work: never a hang (a generous bound, for loaded CI
    # machines and first imports; the alias bomb has its own strict test below).
    assert elapsed < 5.0, f"{path.name} took {elapsed:.2f} s"


def test_caret_points_at_the_column(capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "unknown_op_attr.yaml"
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    quoted, caret = lines[1], lines[2]
    col = int(read_case(path).loc.split(":")[1])
    bar = quoted.index("| ") + 2
    assert quoted[bar:].startswith(path.read_text().splitlines()[9])
    assert caret.index("^") == bar + col - 1
    assert quoted[caret.index("^") :].startswith("unist")


@pytest.mark.parametrize("name", ["alias_bomb", "deep_nesting"])
def test_bombs_are_refused_quickly(name: str) -> None:
    main(["validate", str(XOR)])  # imports done, so only the refusal is timed
    start = time.perf_counter()
    assert main(["validate", str(CORPUS / f"{name}.yaml")]) == 1
    assert time.perf_counter() - start < 0.5


def test_python_tags_construct_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    spec = tmp_path / "evil.yaml"
    spec.write_text(
        "graphspec: 1\nname: t\ninputs: {x: [2]}\n"
        f"graph: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    assert main(["validate", str(spec)]) == 1
    assert "is not allowed" in capsys.readouterr().err
    assert not marker.exists()


def test_ten_megabyte_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.yaml"
    line = "# " + "x" * 1022 + "\n"
    big.write_text("graphspec: 1\n" + line * (10 * 1024))
    assert big.stat().st_size > 10 * 2**20
    start = time.perf_counter()
    assert main(["validate", str(big)]) == 1
    assert time.perf_counter() - start < 1.0
    err = capsys.readouterr().err
    assert err.startswith(f"{big}: error: file is 10.0 MiB; specs are limited to 4 MiB")
    assert "Traceback" not in err


def test_directory_as_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path}: error: {tmp_path} is a directory")


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["validate", str(missing)]) == 1
    assert capsys.readouterr().err.startswith(f"{missing}: error: no such file")


def test_validate_goes_on_past_a_bad_file(capsys: pytest.CaptureFixture[str]) -> None:
    good = Path(__file__).parents[2] / "specs" / "xor.yaml"
    assert main(["validate", str(CORPUS / "unknown_op.yaml"), str(good)]) == 1
    captured = capsys.readouterr()
    assert "unknown op 'lineer'" in captured.err
    assert f"{good}: ok" in captured.out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        ([], ""),
        (["validate"], "the following arguments are required: FILE"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["validate", "--max-params", "-5", "x.yaml"], "expected a positive integer"),
        (["inspect", "x.yaml", "--format", "pdf"], "invalid choice: 'pdf'"),
        (["ops", "lineer"], "unknown op 'lineer'"),
        (["verify", "x.yaml", "--backends", ","], "--backends needs at least one"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert "Traceback" not in err


# ---- the real process: exit statuses and no traceback --------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "graphspec", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("name", ["tag_python_object", "cycle_three_nodes", "non_utf8"])
def test_subprocess_exit_status(name: str) -> None:
    case = read_case(CORPUS / f"{name}.yaml")
    done = run_cli(*case.argv)
    assert done.returncode == case.exit
    assert "Traceback" not in done.stdout + done.stderr
    assert case.fragment in done.stderr


def test_subprocess_usage_error_exits_2() -> None:
    done = run_cli("validate")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_debug_shows_the_traceback() -> None:
    done = run_cli("--debug", "validate", str(CORPUS / "unknown_op.yaml"))
    assert done.returncode != 0
    assert "Traceback" in done.stderr
    assert "SpecError" in done.stderr
