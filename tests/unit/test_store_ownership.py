"""Only the case store writes its index and its columns; everyone else calls its methods."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import casewatch
from casewatch.state.columns import COLUMN_NAMES
from casewatch.state.store import CaseStore, StoreShape

PACKAGE = Path(casewatch.__file__).parent
OWNER = PACKAGE / "state" / "store.py"
OWNED = COLUMN_NAMES | {"index", "_index", "case_ids"}
# Methods that change a dict, a list or an array in place.
MUTATORS = frozenset(
    {"append", "clear", "extend", "fill", "insert", "itemset", "pop", "popitem", "put",
     "remove", "resize", "setdefault", "sort", "update"}
)  # fmt: skip
# numpy functions that write into their first argument.
WRITERS = frozenset({"copyto", "place", "put", "put_along_axis", "putmask", "at"})


def _owned(node: ast.expr, aliases: set[str]) -> bool:
    """Whether ``node`` names store state: ``x.counts``, ``getattr(x, ...)``, or an alias."""
    while isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr in OWNED
    if isinstance(node, ast.Name):
        return node.id in aliases
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and (node.func.id == "getattr")
    )


def _targets(node: ast.AST) -> Iterator[ast.expr]:
    if isinstance(node, ast.Assign | ast.Delete):
        pending = list(node.targets)
    elif isinstance(node, ast.AugAssign | ast.AnnAssign):
        pending = [node.target]
    else:
        return
    while pending:
        target = pending.pop()
        if isinstance(target, ast.Tuple | ast.List):
            pending.extend(target.elts)
        elif isinstance(target, ast.Starred):
            pending.append(target.value)
        else:
            yield target


def _aliases(tree: ast.AST) -> set[str]:
    """Local names bound to store state (``counts = store.counts``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
        for target in node.targets:
            targets = target.elts if isinstance(target, ast.Tuple) else [target]
            names.update(
                name.id
                for name, value in zip(targets, values, strict=False)
                if isinstance(name, ast.Name)
                and isinstance(value, ast.Attribute)
                and value.attr in OWNED
            )
    return names


def _assigns(node: ast.AST, aliases: set[str]) -> bool:
    return any(
        (isinstance(target, ast.Subscript) and _owned(target, aliases))
        or (isinstance(target, ast.Attribute) and target.attr in {"index", "_index"})
        for target in _targets(node)
    )


def _calls_a_writer(node: ast.AST, aliases: set[str]) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func, args = node.func, node.args
    if isinstance(func, ast.Attribute):
        return (func.attr in MUTATORS and _owned(func.value, aliases)) or (
            func.attr in WRITERS and bool(args) and _owned(args[0], aliases)
        )
    if isinstance(func, ast.Name) and func.id == "setattr" and len(args) > 1:
        name = args[1]
        return not isinstance(name, ast.Constant) or name.value in OWNED
    return False


def writes_to_store_state(source: str) -> list[int]:
    """Line numbers of statements that write a store's index, case ids or columns."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    return sorted(
        {
            getattr(node, "lineno", 0)
            for node in ast.walk(tree)
            if _assigns(node, aliases) or _calls_a_writer(node, aliases)
        }
    )


@pytest.mark.parametrize(
    "statement",
    [
        "store.index[case_id] = row",
        "del store.index[case_id]",
        "store.index.pop(case_id)",
        "self.store.index.update(pairs)",
        "new.counts[dst] = counts",
        "store.last_seen[adopt] += 1.0",
        "store.n_events[row], store.unknown[row] = scalars",
        "getattr(new, name)[dst] = values",
        "setattr(store, 'ring', ring)",
        "store.case_ids.append(case_id)",
        "np.copyto(store.ring, ring)",
        "np.add.at(store.counts, (rows, ids), 1)",
        "last_seen = store.last_seen\nlast_seen[rows] = now",
        "store.case_categorical[rows][:, 0] = -1",
    ],
)
def test_the_check_sees_each_way_of_writing_store_state(statement: str) -> None:
    assert writes_to_store_state(statement)


def test_reading_store_state_is_not_a_write() -> None:
    reads = (
        "rows = store.rows()\n"
        "counts = store.counts[rows].astype(np.float32)\n"
        "seen[mask] = store.last_seen[rows]\n"
        "ids = [store.case_ids[row] for row in rows.tolist()]\n"
        "event.partition = 3\n"
    )
    assert writes_to_store_state(reads) == []


def test_no_module_but_the_store_writes_its_index_or_columns() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != OWNER and (lines := writes_to_store_state(path.read_text()))
    }
    assert offenders == {}


def test_the_index_is_read_only_outside_the_store() -> None:
    store = CaseStore(StoreShape(activities=2, sequence_length=2))
    store.rows_for_events(["c"], [])[0]
    assert dict(store.index) == {"c": 0}
    with pytest.raises(TypeError):
        store.index["d"] = 1  # type: ignore[index]
