"""The gallery (specs/*.yaml): each spec states the outcome it expects, in words (its
``doc``) and as claims (its ``expect:``), and meets it after training on both backends.

Every spec and every variant of one trains on numpy and on torch; the run's numbers are
checked against the spec's ``expect:`` claims (graphspec.train.expect).  The suite trains with a
short budget where a spec's own is longer than the suite affords (``QUICK_EPOCHS``: the
claims hold there already); for a spec that needs its full budget it checks an earlier
milestone after a few epochs (``SHORT_CHECKS``) or, where no milestone is reliable that
early (``FULL_BUDGET_ONLY``), trains it briefly and checks that both backends train alike.
The slow tests (opt in with ``-m slow``) train every spec and variant at its full budget with
each of ``SEEDS``: a claim is a lesson, so it holds whatever the initial parameters, data and
noise.
``graphspec verify`` of each spec is tests/verify/test_verify_gallery.py; the variants, which it
does not see, are verified here.  docs/gallery.md must show every
spec, and the pictures it shows must exist and stay small.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from paths import GALLERY, ROOT

import graphspec as gs
from graphspec.analysis import plan
from graphspec.spec.variants import expand_variants
from graphspec.train.expect import check_run
from graphspec.verify import verify

GALLERY_DOC = ROOT / "docs" / "gallery.md"
BACKENDS = ("numpy", "torch")
PICTURE_MAX_BYTES = 150_000
VERIFY_STEPS = 3
# The seeds every claim must hold for (the slow tests): each reseeds the initial parameters,
# the synthetic data, the split, the shuffles and the noise.
SEEDS = range(5)

# The suite's budget, in epochs, for specs whose own is longer (every variant of the spec).
QUICK_EPOCHS: dict[str, int] = {
    "random-labels": 25,
    "label-corruption": 30,
}
# Specs whose lesson needs tens of seconds of training per backend: the suite trains them
# for a few epochs (every variant) against an earlier milestone of the same lesson; their
# own claims, at their own budget, are the slow tests'.
SHORT_CHECKS: dict[str, tuple[int, list[str]]] = {
    # 3.27 nats: the entropy of the text's character frequencies, the best a model that
    # ignores the context can do (specs/char_lstm.yaml).
    "char-lstm": (1, ["val_loss < 3.27"]),
}
# Specs whose claims need their whole budget, a minute or more per variant and backend (an
# LSTM leaves the adding problem's plateau only after hundreds of steps over 50 time
# steps): the slow tests check their claims; the default run trains each variant briefly
# on both backends (SHORT_RUN) and checks that the two train alike.
FULL_BUDGET_ONLY = {"rnn-vs-lstm"}
SHORT_RUN = ["train.epochs=1", "train.data.samples=300"]
# Variants that repeat another variant's lesson at a larger size, with the same ops and
# options (the adding problem at T = 100): the default run leaves them to the slow tests.
SLOW_ONLY = {("rnn_vs_lstm", "lstm_t100"), ("rnn_vs_lstm", "rnn_t100")}


def _cases() -> list[object]:
    out = []
    for path in GALLERY:
        for name, spec in expand_variants(path).items():
            label = path.stem if spec.variant is None else f"{path.stem}[{name}]"
            marks = [pytest.mark.slow] if (path.stem, name) in SLOW_ONLY else []
            out.append(pytest.param(path, name, id=label, marks=marks))
    return out


CASES = _cases()
QUICK_CASES = [c for c in CASES if gs.load(c.values[0]).name not in FULL_BUDGET_ONLY]  # type: ignore[attr-defined]
SHORT_CASES = [c for c in CASES if c not in QUICK_CASES]
# A variant with an empty patch is the spec as written, which test_verify_gallery.py verifies.
VARIANT_CASES = [c for c in CASES if gs.load(c.values[0]).variants.get(c.values[1])]  # type: ignore[attr-defined]


def _spec(path: Path, name: str) -> gs.Spec:
    return expand_variants(path)[name]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The gallery's networks are small: one thread is fastest, and threads fighting over
    two cores (pytest-xdist, other jobs) make torch tens of times slower."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def full_budget(request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.option.markexpr or ""):
        pytest.skip("the full training budgets run with -m slow")


@pytest.mark.parametrize("path", GALLERY, ids=[p.stem for p in GALLERY])
def test_spec_states_its_outcome(path: Path) -> None:
    """A gallery spec says what it shows and what to expect, in words and as claims, and
    is ready to train: data, loss, and analysis entries that fit its graph."""
    variants = expand_variants(path)
    base = gs.load(path)
    assert base.doc.strip(), f"{path.name}: no doc"
    assert "Expected:" in base.doc, f"{path.name}: the doc states no expected outcome"
    for name, spec in variants.items():
        assert spec.expect, f"{path.name} [{name}]: no expect: claims"
        assert spec.train is not None and spec.loss, f"{path.name} [{name}]: cannot train"
        plan(spec, gs.build(spec))


def _train_and_check(
    path: Path,
    name: str,
    backend: str,
    out: Path,
    epochs: int | None,
    seed: int | None = None,
    claims: list[str] | None = None,
) -> None:
    """Train and check ``claims`` (default: the spec's ``expect:``)."""
    spec = _spec(path, name)
    run = gs.train(spec, backend=backend, out=out, epochs=epochs, seed=seed, progress=False)
    outcomes = check_run(spec.expect if claims is None else claims, run)
    failed = [o for o in outcomes if not o.held]
    report = "\n".join(o.render() for o in outcomes)
    used = spec.seed if seed is None else seed
    where = f"{path.name} [{name}] on {backend}, seed {used}, {run.epochs} epochs"
    assert not failed, f"{where}:\n{report}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("path", "name"), QUICK_CASES)
def test_spec_meets_its_outcome(path: Path, name: str, backend: str, tmp_path: Path) -> None:
    spec = _spec(path, name)
    if spec.name in SHORT_CHECKS:
        epochs, claims = SHORT_CHECKS[spec.name]
        _train_and_check(path, name, backend, tmp_path / "run", epochs, claims=claims)
    else:
        _train_and_check(path, name, backend, tmp_path / "run", QUICK_EPOCHS.get(spec.name))


@pytest.mark.parametrize(("path", "name"), SHORT_CASES)
def test_long_spec_trains_alike_on_both_backends(path: Path, name: str, tmp_path: Path) -> None:
    """A spec of FULL_BUDGET_ONLY, briefly (SHORT_RUN): numpy and torch end with the same
    losses (float64, same initial parameters and batches) and every claim can be evaluated
    on the run (it names numbers the run has), whether or not it holds yet."""
    spec = expand_variants(gs.load(path, SHORT_RUN))[name]
    finals = []
    for backend in BACKENDS:
        run = gs.train(spec, backend=backend, out=tmp_path / backend, progress=False)
        outcomes = check_run(spec.expect, run)
        assert not [o.error for o in outcomes if o.error], "\n".join(o.render() for o in outcomes)
        finals.append(run.final)
    for key in ("train_loss", "val_loss"):
        assert finals[1][key] == pytest.approx(finals[0][key], rel=1e-9), key


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("path", "name"), CASES)
def test_spec_meets_its_outcome_every_seed(
    path: Path, name: str, backend: str, seed: int, tmp_path: Path, full_budget: None
) -> None:
    """The spec's own budget, with ``seed`` in place of the spec's: the lesson does not
    depend on a lucky draw."""
    _train_and_check(path, name, backend, tmp_path / "run", None, seed)


@pytest.mark.parametrize(("path", "name"), VARIANT_CASES)
def test_variant_verifies(path: Path, name: str) -> None:
    """numpy against torch (float64) and against finite differences, like every spec in
    tests/verify/test_verify_gallery.py, for each variant of a spec."""
    report = verify(_spec(path, name), steps=VERIFY_STEPS)
    assert report.ok, report.render(only_failures=True)


def test_gallery_page_shows_every_spec() -> None:
    text = GALLERY_DOC.read_text(encoding="utf-8")
    for path in GALLERY:
        assert f"specs/{path.name}" in text, f"docs/gallery.md does not show {path.name}"
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert pictures, "docs/gallery.md shows no pictures"
    for rel in pictures:
        png = GALLERY_DOC.parent / rel
        assert png.is_file(), f"docs/gallery.md shows {rel}, which does not exist"
        assert png.stat().st_size < PICTURE_MAX_BYTES, f"{rel} is over {PICTURE_MAX_BYTES} bytes"
