"""Small wrong versions of a solution, made to check that an exercise's tests catch wrong answers.

A test cell is only as good as the wrong answers it rejects. Each mutant changes one thing inside the
`### BEGIN SOLUTION` / `### END SOLUTION` region of an answer cell, the kind of slip a student makes:
an operator (+ for -), a comparison (< for <=), a constant (off by one, True for False), the mean for
the median (or back), a keyword argument left out. Code outside the region (the given signature,
the docstring) is never changed.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from dataclasses import dataclass

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"

BINARY_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
}
COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
NAME_SWAPS = {"median": "mean", "mean": "median", "reduce_mean": "reduce_sum", "reduce_sum": "reduce_mean"}

# Names that mark a solution as TensorFlow work: the library itself, or what only its objects have.
TENSORFLOW_NAMES = {"tf", "keras", "layers", "hub", "tf_keras", "Interpreter", "ai_edge_litert"}
TENSORFLOW_ATTRIBUTES = {
    "count_params",
    "trainable_weights",
    "non_trainable_weights",
    "weights",
    "signatures",
    "set_weights",
    "get_weights",
    "layers",
    "inputs",
    "outputs",
    "get_input_details",
    "get_output_details",
    "invoke",
    "structured_input_signature",
    "structured_outputs",
}


@dataclass(frozen=True)
class Mutant:
    """One changed copy of an answer cell: the full cell source and what was changed where."""

    source: str
    line: int
    change: str


def solution_lines(source: str) -> set[int]:
    """The 1-based line numbers strictly between each BEGIN and END SOLUTION pair (empty if none)."""
    found: set[int] = set()
    begin = None
    for number, line in enumerate(source.splitlines(), 1):
        if line.strip() == BEGIN:
            begin = number
        elif line.strip() == END and begin is not None:
            found.update(range(begin + 1, number))
            begin = None
    return found


def _docstring_ids(tree: ast.AST) -> set[int]:
    """The ids of docstring constants: mutating documentation tests nothing."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _inside_fstring(tree: ast.AST) -> set[int]:
    """Ids of nodes inside f-strings (error messages): changing a message is not a wrong answer."""
    return {id(inner) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for inner in ast.walk(node)}


def _edits(node: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """(description, replacement node) for every single-slip variant of one node."""
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY_SWAPS:
        new = copy.copy(node)
        new.op = BINARY_SWAPS[type(node.op)]()
        yield f"{type(node.op).__name__} -> {type(new.op).__name__}", new
    elif isinstance(node, ast.AugAssign) and type(node.op) in BINARY_SWAPS:
        new = copy.copy(node)
        new.op = BINARY_SWAPS[type(node.op)]()
        yield f"{type(node.op).__name__}= -> {type(new.op).__name__}=", new
    elif isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            if type(op) in COMPARE_SWAPS:
                new = copy.copy(node)
                new.ops = list(node.ops)
                new.ops[index] = COMPARE_SWAPS[type(op)]()
                yield f"{type(op).__name__} -> {type(new.ops[index]).__name__}", new
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        if isinstance(node.value, bool):
            yield f"{node.value} -> {not node.value}", ast.Constant(not node.value)
        elif isinstance(node.value, int):
            yield f"{node.value} -> {node.value + 1}", ast.Constant(node.value + 1)
        elif isinstance(node.value, float):
            changed = node.value * 2 if node.value else 1.0
            yield f"{node.value} -> {changed}", ast.Constant(changed)
    elif isinstance(node, ast.Attribute) and node.attr in NAME_SWAPS:
        new = copy.copy(node)
        new.attr = NAME_SWAPS[node.attr]
        yield f".{node.attr} -> .{new.attr}", new
    elif isinstance(node, ast.Name) and node.id in NAME_SWAPS:
        yield f"{node.id} -> {NAME_SWAPS[node.id]}", ast.Name(NAME_SWAPS[node.id], node.ctx)
    elif isinstance(node, ast.Call):
        for index, keyword in enumerate(node.keywords):
            if keyword.arg is not None:
                new = copy.copy(node)
                new.keywords = node.keywords[:index] + node.keywords[index + 1 :]
                yield f"dropped {keyword.arg}=", new
    elif isinstance(node, ast.BoolOp):
        new = copy.copy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield f"{type(node.op).__name__} -> {type(new.op).__name__}", new


def _parents(tree: ast.AST) -> dict[int, tuple[ast.AST, str, int | None]]:
    """For every node: its parent, the field holding it and its index in that field (None: not a list)."""
    found: dict[int, tuple[ast.AST, str, int | None]] = {}
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if isinstance(value, ast.AST):
                found[id(value)] = (parent, field, None)
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        found[id(item)] = (parent, field, index)
    return found


def _unparse_with(tree: ast.Module, where: tuple[ast.AST, str, int | None], replacement: ast.AST) -> str:
    """The source of `tree` with one node replaced; the tree is put back as it was afterwards."""
    parent, field, index = where
    if index is None:
        original = getattr(parent, field)
        setattr(parent, field, replacement)
        try:
            return ast.unparse(tree)
        finally:
            setattr(parent, field, original)
    items = getattr(parent, field)
    original = items[index]
    items[index] = replacement
    try:
        return ast.unparse(tree)
    finally:
        items[index] = original


def mutants(source: str) -> list[Mutant]:
    """Every one-slip variant of the solution region of an answer cell, each as a whole cell source."""
    region = solution_lines(source)
    if not region:
        return []
    tree = ast.parse(source)
    skip = _docstring_ids(tree) | _inside_fstring(tree)
    parents = _parents(tree)
    original = ast.unparse(tree)
    found: dict[str, Mutant] = {}
    for node in list(ast.walk(tree)):
        line = getattr(node, "lineno", 0)
        if line not in region or id(node) in skip or id(node) not in parents:
            continue
        for change, replacement in _edits(node):
            mutated = _unparse_with(tree, parents[id(node)], ast.copy_location(replacement, node))
            if mutated != original and mutated not in found:
                found[mutated] = Mutant(mutated, line, change)
    return list(found.values())


def uses_tensorflow(source: str) -> bool:
    """Whether the solution region calls TensorFlow, Keras or LiteRT, or uses what only their objects have."""
    region = solution_lines(source)
    for node in ast.walk(ast.parse(source)):
        if getattr(node, "lineno", None) not in region:
            continue
        if isinstance(node, ast.Name) and node.id in TENSORFLOW_NAMES:
            return True
        if isinstance(node, ast.Attribute) and node.attr in TENSORFLOW_ATTRIBUTES:
            return True
    return False
