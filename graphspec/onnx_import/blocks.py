"""Find where the graph repeats a pattern: a block, with ``repeat`` for consecutive runs.

A pattern is a run of nodes (in the graph's order) that reads one value from outside (the
block's input, ``$in``), whose inner values nobody outside reads, and whose last node gives
the block's output.  Two runs match when their nodes have the same ops, attributes and
parameter shapes (:meth:`Node.signature`) and the same wiring; parameter values may differ
(each use of a block has its own).  The scan is greedy from the start: at each node the
pattern length covering the most nodes with at least two consecutive copies wins; a single
later copy of a pattern already made a block uses that block too, and a pattern with a
layer in it that occurs again further on becomes a block used at each place.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from graphspec.onnx_import.translate import Node

MAX_PATTERN = 12  # nodes in a block: longer repeats are rare and slow to look for
MIN_PATTERN = 2  # one node repeated is clearer written out than as a block


@dataclass
class Use:
    """``repeat`` consecutive copies of block ``name`` starting at node ``start``."""

    name: str
    start: int
    length: int
    repeat: int


@dataclass
class Block:
    name: str
    nodes: list[Node]  # the first copy, whose ids and attributes the definition shows


Key = tuple


def find_blocks(nodes: list[Node], outputs: list[str]) -> tuple[list[Use], dict[Key, Block]]:
    uses = Counter(i for n in nodes for i in n.inputs) + Counter(outputs)
    keys: dict[tuple[int, int], Key] = {}  # (start, length) -> pattern, where one
    where: dict[Key, list[int]] = {}  # pattern -> its starts
    for i in range(len(nodes)):
        for length in range(MIN_PATTERN, min(MAX_PATTERN, len(nodes) - i) + 1):
            key = _key(nodes, i, length, uses, outputs)
            if key is not None:
                keys[(i, length)] = key
                where.setdefault(key, []).append(i)
    found: list[Use] = []
    blocks: dict[Key, Block] = {}
    i = 0
    while i < len(nodes):
        best: tuple[int, int] | None = None  # (length, repeat)
        for length in range(MIN_PATTERN, min(MAX_PATTERN, len(nodes) - i) + 1):
            k = _copies(nodes, i, length, uses, outputs) if (i, length) in keys else 0
            if k >= 2 and (best is None or length * k > best[0] * best[1]):
                best = (length, k)
        if best is None:
            # The longest pattern here that is already a block or comes again later.
            for length in range(min(MAX_PATTERN, len(nodes) - i), MIN_PATTERN - 1, -1):
                key = keys.get((i, length))
                # A layer in it: two parameter-free ops apart are clearer written out.
                if (
                    key is not None
                    and any(n.params for n in nodes[i : i + length])
                    and (key in blocks or any(j >= i + length for j in where[key]))
                ):
                    best = (length, 1)
                    break
        if best is None:
            i += 1
            continue
        length, k = best
        key = keys[(i, length)]
        if key not in blocks:
            blocks[key] = Block(_block_name(nodes[i : i + length], blocks), nodes[i : i + length])
        found.append(Use(blocks[key].name, i, length, k))
        i += length * k
    return found, blocks


def _copies(nodes: list[Node], i: int, length: int, uses: Counter[str], outputs: list[str]) -> int:
    """How many consecutive copies of the pattern nodes[i:i+length] start at i, each
    reading the previous copy's output."""
    key = _key(nodes, i, length, uses, outputs)
    if key is None:
        return 0
    k = 1
    while i + (k + 1) * length <= len(nodes):
        j = i + k * length
        prev = nodes[j - 1].output
        reads = sum(v == prev for n in nodes[j : j + length] for v in n.inputs)
        if (
            _key(nodes, j, length, uses, outputs) != key
            or entry_value(nodes[j : j + length]) != prev
            or uses[prev] != reads
        ):
            break
        k += 1
    return k


def entry_value(run: list[Node]) -> str | None:
    """The one value from outside that ``run`` reads, or None (none, or several)."""
    inside = {n.output for n in run}
    outside = {v for n in run for v in n.inputs if v not in inside}
    return next(iter(outside)) if len(outside) == 1 else None


def _key(
    nodes: list[Node], i: int, length: int, uses: Counter[str], outputs: list[str]
) -> Key | None:
    """The pattern of nodes[i:i+length] (signatures and wiring by position), or None when
    it cannot be a block: several values read from outside, an inner value read outside,
    a graph output inside, or a parameter/constant node."""
    run = nodes[i : i + length]
    entry = entry_value(run)
    if entry is None:
        return None
    pos = {n.output: k for k, n in enumerate(run)}
    for n in run[:-1]:
        if n.output in outputs or uses[n.output] != sum(
            v == n.output for m in run for v in m.inputs
        ):
            return None
    if run[-1].output in outputs or any(n.op in ("param", "constant") for n in run):
        return None
    return tuple((n.signature(), tuple(pos.get(v, -1) for v in n.inputs)) for n in run)


def _block_name(run: list[Node], blocks: dict[Key, Block]) -> str:
    ops: list[str] = []
    for n in run:
        if n.op not in ops:
            ops.append(n.op)
    base = "_".join(ops[:3])
    taken = {b.name for b in blocks.values()}
    name, k = base, 2
    while name in taken:
        name, k = f"{base}{k}", k + 1
    return name
