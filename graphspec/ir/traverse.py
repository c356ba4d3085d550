"""Whole-graph traversals in linear time, for graphs of any size.

networkx's ``ancestors(g, n)`` walks the graph once per node it is asked about, so a pass
that calls it for every sink (or every parameter) is quadratic on a deep graph; these walk
once from all the starting nodes together.  ``lex_topo_order`` is networkx's
``lexicographical_topological_sort`` (the same order: among the nodes whose arguments are all
placed, the smallest id first) without the per-node view objects that make networkx's
version slow on 1e5 nodes.  They read the graph's adjacency dicts (``g._pred``, ``g._succ``:
node -> neighbour -> edge key -> data) directly, as networkx's own algorithms do: the public
views build a Python object per access, which costs more than the traversal itself.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable
from typing import Any

import networkx as nx


def ancestors(g: nx.MultiDiGraph, nodes: Iterable[str], *, inclusive: bool = False) -> set[str]:
    """Every node with a path to one of ``nodes`` (and ``nodes`` themselves if inclusive)."""
    return _reach(g._pred, nodes, inclusive)


def descendants(g: nx.MultiDiGraph, nodes: Iterable[str], *, inclusive: bool = False) -> set[str]:
    """Every node reachable from one of ``nodes`` (and ``nodes`` themselves if inclusive)."""
    return _reach(g._succ, nodes, inclusive)


def _reach(adj: dict[str, dict[str, Any]], nodes: Iterable[str], inclusive: bool) -> set[str]:
    start = list(dict.fromkeys(nodes))
    seen: set[str] = set()
    todo = list(start)
    while todo:
        n = todo.pop()
        for m in adj[n]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    if inclusive:
        seen.update(start)
    return seen


def has_cycle(g: nx.MultiDiGraph) -> bool:
    """Whether ``g`` has a directed cycle (Kahn's algorithm: linear, no ordering work)."""
    succ = g._succ
    indeg = {n: sum(len(keys) for keys in preds.values()) for n, preds in g._pred.items()}
    todo = [n for n, d in indeg.items() if d == 0]
    placed = 0
    while todo:
        n = todo.pop()
        placed += 1
        for c, keys in succ[n].items():
            indeg[c] -= len(keys)
            if indeg[c] == 0:
                todo.append(c)
    return placed != len(indeg)


def lex_topo_order(g: nx.MultiDiGraph, nodes: Collection[str] | None = None) -> list[str]:
    """``list(nx.lexicographical_topological_sort(g.subgraph(nodes)))``, in O(E + N log N).

    Raises ``nx.NetworkXUnfeasible`` when the (sub)graph has a cycle, as networkx does.
    """
    pred, succ = g._pred, g._succ
    inside = None if nodes is None else set(nodes)
    members: Iterable[str] = g if nodes is None else nodes
    indeg: dict[str, int] = {}
    for n in members:
        if inside is None:
            indeg[n] = sum(len(keys) for keys in pred[n].values())
        else:
            indeg[n] = sum(len(keys) for p, keys in pred[n].items() if p in inside)
    heap = [n for n, d in indeg.items() if d == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        n = heapq.heappop(heap)
        order.append(n)
        for c, keys in succ[n].items():
            if inside is not None and c not in inside:
                continue
            indeg[c] -= len(keys)
            if indeg[c] == 0:
                heapq.heappush(heap, c)
    if len(order) != len(indeg):
        raise nx.NetworkXUnfeasible("Graph contains a cycle or graph changed during iteration")
    return order
