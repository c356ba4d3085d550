"""Drop the layout shuffles a translation leaves that cancel or compose.

Exporters move axes around recurrent layers (ONNX's LSTM is sequence-first, graphspec's
batch-first), and global pooling keeps unit axes a following flatten removes.  Two
transposes in a row become one (or none), two reshapes in a row become one (or none when
the shape comes back), and a reshape to the shape it is given disappears.  Only a value
nothing else reads is folded away, so no other node sees a change.
"""

from __future__ import annotations

from collections import Counter

from graphspec.onnx_import.translate import Graph, Node

_RESHAPES = ("reshape", "flatten")


def simplify(graph: Graph) -> Graph:
    nodes = list(graph.nodes)
    outputs = list(graph.outputs)
    while True:
        producer = {n.output: n for n in nodes}
        uses = Counter(i for n in nodes for i in n.inputs) + Counter(outputs)
        shapes = {n.output: n.shape for n in nodes} | {
            k: tuple(v[0]) for k, v in graph.inputs.items()
        }
        dead = [n for n in nodes if uses[n.output] == 0]  # what a fold left unread
        if dead:
            nodes = [n for n in nodes if uses[n.output] > 0]
            continue
        change = _one_step(nodes, producer, uses, shapes, outputs)
        if change is None:
            return Graph(graph.inputs, nodes, outputs)
        drop, rename = change
        nodes = [n for n in nodes if n is not drop]
        if rename is not None:
            old, new = rename
            nodes = [n for n in nodes if n.output != old]
            for n in nodes:
                n.inputs = [new if i == old else i for i in n.inputs]


def _one_step(
    nodes: list[Node],
    producer: dict[str, Node],
    uses: Counter[str],
    shapes: dict,
    outputs: list[str],
) -> tuple[Node | None, tuple[str, str] | None] | None:
    """One fold: (a node to drop, (a value renamed to another) or None), or None."""
    for n in nodes:
        if n.op not in ("transpose", *_RESHAPES) or len(n.inputs) != 1:
            continue
        start = _identity_chain(n, producer, uses, shapes, outputs)
        if start is not None:
            return None, (n.output, start)
        src_value = n.inputs[0]
        if (
            n.op == "reshape"
            and n.shape is not None
            and shapes.get(src_value) == n.shape
            and n.output not in outputs
        ):
            return None, (n.output, src_value)  # a reshape to the shape it has
        src = producer.get(src_value)
        if src is None or uses[src_value] != 1 or src_value in outputs:
            continue
        if n.op == "transpose" and src.op == "transpose":
            perm = [src.attrs["axes"][p] for p in n.attrs["axes"]]
            if perm == sorted(perm) and n.output not in outputs:
                return src, (n.output, src.inputs[0])
            n.attrs["axes"] = perm
            n.inputs = list(src.inputs)
            return src, None
        if (
            n.op in _RESHAPES
            and src.op in _RESHAPES
            and n.shape is not None
            and all(d is not None for d in n.shape)
        ):
            origin = src.inputs[0]
            if shapes.get(origin) == n.shape and n.output not in outputs:
                return src, (n.output, origin)
            if not _names_stay(shapes.get(origin), n.shape):
                continue
            n.op, n.attrs, n.inputs = "reshape", {"shape": list(n.shape)}, [origin]
            return src, None
    return None


def _names_stay(src: tuple | None, target: tuple) -> bool:
    """graphspec's reshape keeps a named dimension at its axis."""
    if src is None:
        return False
    return all(
        not isinstance(d, str) or (i < len(src) and src[i] == d) for i, d in enumerate(target)
    )


def _identity_chain(
    end: Node, producer: dict[str, Node], uses: Counter[str], shapes: dict, outputs: list[str]
) -> str | None:
    """The value a chain of transposes and unit-axis reshapes ending at ``end`` starts
    from, when the chain as a whole changes nothing; else None."""
    if end.output in outputs or end.shape is None:
        return None
    chain = [end]
    while True:
        src = producer.get(chain[-1].inputs[0])
        if (
            src is None
            or src.op not in ("transpose", *_RESHAPES)
            or len(src.inputs) != 1
            or uses[src.output] != 1
            or src.output in outputs
        ):
            return None
        chain.append(src)
        start = src.inputs[0]
        if shapes.get(start) == end.shape and _labels(list(reversed(chain)), shapes.get(start)):
            return start


def _labels(chain: list[Node], shape: tuple | None) -> bool:
    """Do ``chain``'s ops, applied to ``shape``, leave every non-unit axis where it was?"""
    if shape is None:
        return False
    labels: list[int | None] = [i if d != 1 else None for i, d in enumerate(shape)]
    dims = list(shape)
    for n in chain:
        if n.op == "transpose":
            labels = [labels[p] for p in n.attrs["axes"]]
            dims = [dims[p] for p in n.attrs["axes"]]
            continue
        if n.shape is None or [d for d in dims if d != 1] != [d for d in n.shape if d != 1]:
            return False  # a reshape that merges or splits axes
        kept = iter(x for x, d in zip(labels, dims) if d != 1)
        labels = [next(kept) if d != 1 else None for d in n.shape]
        dims = list(n.shape)
    real = [x for x in labels if x is not None]
    return real == sorted(real)
