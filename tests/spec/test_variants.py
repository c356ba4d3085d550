"""Variants of one spec: the merge rules, located errors, and the commands that use them."""

from __future__ import annotations

from pathlib import Path

import pytest

import graphspec as gs
from graphspec.analysis.checks import check_variant
from graphspec.cli import main
from graphspec.errors import SpecError, UsageError
from graphspec.spec.models import Spec
from graphspec.spec.variants import expand_variants, select
from graphspec.train.rundir import variant_dir

BASE = """\
graphspec: 1
name: cmp
seed: 0
inputs:
  x: [batch, 2]
  y: [batch, 1]
blocks:
  layer:
    params: {units: 4}
    graph:
      - {id: lin, op: linear, units: $units}
      - {id: act, op: tanh}
graph:
  - {id: body, block: layer, in: x}
  - {id: drop, op: dropout, p: 0.0}
  - {id: logit, op: linear, units: 1}
outputs: [logit]
loss:
  - {op: bce_with_logits, in: [logit, y]}
  - {op: l2_penalty, weight: 0.0}
train:
  data: {source: xor, samples: 64, val_split: 0.25}
  optimizer: {name: sgd, lr: 0.5}
  epochs: 2
  early_stopping: {patience: 5}
  metrics: [binary_accuracy]
"""


def spec_with(tmp_path: Path, variants: str, base: str = BASE) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(base + "variants:\n" + variants)
    return path


def error_of(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        for v in expand_variants(path).values():
            check_variant(v)
    return info.value


def line_col(err: SpecError) -> tuple[int | None, int | None]:
    assert err.location is not None
    return err.location.line, err.location.col


def test_a_spec_without_variants_is_its_own_only_variant() -> None:
    spec = gs.loads(BASE)
    out = expand_variants(spec)
    assert list(out) == ["cmp"] and out["cmp"] is spec and spec.variant is None
    assert variant_dir("runs/cmp", spec) == Path("runs/cmp")


def test_patches_merge_into_the_spec(tmp_path: Path) -> None:
    path = spec_with(tmp_path, """\
  plain: {}
  relu:
    blocks: {layer: {graph: {act: {op: relu}}}}
  tuned:
    graph: {drop: {p: 0.3}}
    loss: {l2_penalty: {weight: 1.0e-3}}
    train: {optimizer: {lr: 0.1, momentum: 0.9}, early_stopping: null, epochs: 3}
  slim:
    graph: {drop: null}
    blocks: {layer: {params: {units: 2}}}
  adam:
    train: {optimizer: {name: adam, lr: 0.01}, metrics: [binary_accuracy]}
""")
    vs = expand_variants(path)
    assert list(vs) == ["plain", "relu", "tuned", "slim", "adam"]
    assert all(v.variant == k and v.variants == {} for k, v in vs.items())
    assert vs["plain"].model_dump() == {**gs.load(path).model_dump(), "variants": {}}
    assert [n.op for n in vs["relu"].blocks["layer"].graph] == ["linear", "relu"]
    tuned = vs["tuned"]
    assert tuned.graph[1].attrs == {"p": 0.3}
    assert [t.weight for t in tuned.loss] == [1.0, 1e-3]
    assert tuned.train is not None and tuned.train.early_stopping is None
    assert tuned.train.optimizer.lr == 0.1 and tuned.train.epochs == 3
    assert tuned.train.optimizer.momentum == 0.9  # type: ignore[union-attr]
    assert [n.id for n in vs["slim"].graph] == ["body", "logit"]
    assert vs["slim"].blocks["layer"].params == {"units": 2}
    assert gs.build(vs["slim"]).type("body.lin.weight").shape == (2, 2)
    assert vs["adam"].train is not None and vs["adam"].train.optimizer.name == "adam"
    assert variant_dir("runs/cmp", vs["adam"]) == Path("runs/cmp/adam")
    # The base spec is valid by itself and keeps its variants.
    assert list(gs.load(path).variants) == list(vs)


def test_a_list_replaces_the_spec_list(tmp_path: Path) -> None:
    path = spec_with(tmp_path, """\
  linear:
    graph:
      - {id: logit, op: linear, in: x, units: 1}
""")
    spec = expand_variants(path)["linear"]
    assert [n.id for n in spec.graph] == ["logit"]
    assert gs.build(spec).param_count() == 3


def test_variants_of_a_spec_built_in_python() -> None:
    data = gs.loads(BASE + "variants:\n  wide: {graph: {logit: {units: 1, bias: false}}}\n")
    spec = Spec.model_validate(data.model_dump(by_alias=True, exclude_unset=True))
    out = expand_variants(spec)
    assert out["wide"].graph[2].attrs == {"units": 1, "bias": False}


@pytest.mark.parametrize("variants, at, message, hint", [
    ("  bad: {graph: {act: {op: relu}}}\n", "act", "no node 'act' in graph",
     "a node of block 'layer'"),
    ("  bad: {graph: {dorp: {p: 0.1}}}\n", "dorp", "no node 'dorp' in graph", "'drop'"),
    ("  bad: {graph: {drop: {op: dropuot}}}\n", "dropuot", "unknown op 'dropuot'",
     "'dropout'"),
    ("  bad: {train: {epochs: 0}}\n", "0}", "train.epochs", None),
    ("  bad: {train: {epohcs: 3}}\n", "epohcs", "unknown key 'epohcs'", "'epochs'"),
    ("  bad: {graph: {drop: {p: 2}}}\n", "2}", "less than 1", None),
    ("  bad: {graph: {drop: 3}}\n", "3}", "must be a mapping", None),
    ("  bad: {train: {early_stoping: null}}\n", "early_stoping", "nothing to remove",
     "'early_stopping'"),
    ("  bad: {variants: {x: {}}}\n", "variants", "cannot change 'variants'", None),
    ("  bad: {graphspec: 2}\n", "graphspec", "cannot change 'graphspec'", None),
    ("  .hidden: {}\n", ".hidden", "may not start with '.'", None),
    ("  bad: 3\n", "3", "variants.bad", None),
])
def test_errors_point_at_the_variant(
    tmp_path: Path, variants: str, at: str, message: str, hint: str | None
) -> None:
    err = error_of(spec_with(tmp_path, variants))
    assert message in err.message
    assert line_col(err) == (len(BASE.splitlines()) + 2, variants.index(at) + 1)
    if hint is not None:
        assert err.hint is not None and hint in err.hint
    if at not in (".hidden", "3"):  # those are errors of the base spec's 'variants:'
        assert any(text.startswith("in variant") for text, _ in err.notes)


def test_an_error_in_the_spec_that_a_variant_causes_names_the_variant(tmp_path: Path) -> None:
    # The patch is fine; the spec's skip connection is not, once the block is 3 wide.
    body = BASE.replace("  - {id: logit, op: linear, units: 1}\n",
                        "  - {id: skip, op: add, in: [drop, x]}\n"
                        "  - {id: logit, op: linear, units: 1}\n")
    path = spec_with(tmp_path, "  ok: {}\n  wide: {blocks: {layer: {params: {units: 3}}}}\n",
                     body.replace("params: {units: 4}", "params: {units: 2}"))
    err = error_of(path)
    assert line_col(err)[0] == 16  # the add, in the spec itself
    assert [t for t, _ in err.notes][-1] == "in variant 'wide'"


def test_loss_terms_without_an_id_patch_by_op_and_ambiguity_is_an_error(tmp_path: Path) -> None:
    body = BASE.replace("  - {op: l2_penalty, weight: 0.0}\n",
                        "  - {op: l2_penalty, weight: 0.0}\n  - {op: l2_penalty, weight: 1.0}\n")
    err = error_of(spec_with(tmp_path, "  bad: {loss: {l2_penalty: {weight: 2}}}\n", body))
    assert "several terms of loss are 'l2_penalty'" in err.message


def test_select_names_variants_and_suggests(tmp_path: Path) -> None:
    vs = expand_variants(spec_with(tmp_path, "  relu: {}\n  tanh: {}\n"))
    assert list(select(vs, ["tanh"])) == ["tanh"]
    assert list(select(vs, None)) == ["relu", "tanh"]
    with pytest.raises(UsageError) as info:
        select(vs, ["rleu"])
    assert info.value.hint == "did you mean 'relu'?"
    with pytest.raises(UsageError, match="has no 'variants:'"):
        select(expand_variants(gs.loads(BASE)), ["x"])


# ---- commands ------------------------------------------------------------------------------


def test_train_trains_every_variant_and_overlays_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = spec_with(tmp_path, "  sgd: {}\n  adam: {train: {optimizer: {name: adam}}}\n")
    out = tmp_path / "runs"
    assert main(["train", str(path), "--out", str(out), "--epochs", "1"]) == 0
    text = capsys.readouterr()
    assert "variant sgd:" in text.out and "variant adam:" in text.out
    for name in ("sgd", "adam"):
        assert (out / name / "metrics.jsonl").is_file()
    assert (out / "curves.png").is_file()
    assert main(["train", str(path), "--out", str(tmp_path / "one"), "--epochs", "1",
                 "--variant", "adam"]) == 0
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["adam", "curves.png"]
    assert main(["train", str(path), "--variant", "adma"]) == 2
    assert "did you mean 'adam'?" in capsys.readouterr().err


def test_a_diverging_variant_does_not_stop_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = spec_with(tmp_path, "  ok: {}\n  wild: {train: {optimizer: {lr: 1.0e+300}}}\n",
                     BASE.replace("bce_with_logits", "mse").replace("source: xor",
                                                                    "source: linear")
                     .replace("  metrics: [binary_accuracy]\n", ""))
    out = tmp_path / "runs"
    assert main(["train", str(path), "--out", str(out), "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert "loss is" in err and "note: in variant" not in err
    assert (out / "ok" / "summary.json").is_file() and (out / "curves.png").is_file()


def test_validate_and_verify_check_each_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = spec_with(tmp_path, "  a: {}\n  b: {graph: {drop: {p: 0.5}}}\n")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "[variant a]: ok" in out and "[variant b]: ok" in out
    assert main(["verify", str(path), "--backends", "numpy", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "variant a:" in out and "variant b:" in out
    bad = spec_with(tmp_path, "  a: {}\n  b: {graph: {drop: {q: 0.5}}}\n")
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "spec.yaml:29:22: error: unknown key 'q' for op 'dropout'" in err
    assert "note: in variant 'b'" in err
