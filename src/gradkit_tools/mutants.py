"""Systematic mutants of a solution stub: small edits of its syntax tree, each a plausible student slip.

Mutation tools such as mutmut and cosmic-ray mutate files of a package; a stub's solution lives in a
notebook cell, so the operators here work on the cell's source with :mod:`ast`. Each operator visits every
place it applies to inside one function and yields one mutant per edit:

=============  ==========================================================================================
operator       edit (one per site)
=============  ==========================================================================================
``binop``      ``+ <-> -``, ``* <-> /``, ``** -> *``, ``// -> /``
``compare``    ``< <-> <=``, ``> <-> >=``, ``== <-> !=``, ``is <-> is not``
``constant``   a number ``n`` -> ``n + 1``; a float ``x`` -> ``2 x`` (``0.0`` -> ``1.0``); ``True <-> False``
``negate``     ``-x`` -> ``x``; ``not x`` -> ``x``
``boolop``     ``and <-> or``
``ifexp``      ``a if c else b`` -> ``a``, and -> ``b`` (e.g. the ``seed=None`` case dropped)
``keyword``    one keyword argument dropped from a call (an argument not forwarded)
``argswap``    two positional arguments of a call swapped
``drop``       one statement of the body replaced by ``pass`` (a layer or a step dropped)
``swap``       two adjacent statements exchanged (layers reordered)
``string``     a string constant that names something (``"relu"``, ``"float32"``) -> another of its kind
=============  ==========================================================================================

A mutant's id, ``<function>:L<line>c<column>:<operator>:<detail>``, names the edit in the solution's own line
numbers, so a list of equivalent mutants (``course/<name>/mutants.yml``) stays readable.
"""
from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from typing import Iterator

__all__ = ["Mutant", "mutants", "OPERATORS"]

OPERATORS = ("binop", "compare", "constant", "negate", "boolop", "ifexp", "keyword", "argswap", "drop", "swap",
             "string")

_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
          ast.FloorDiv: ast.Div}
_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
        ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_STRINGS = [("relu", "tanh"), ("tanh", "relu"), ("float32", "float64"), ("float64", "float32"),
            ("he_normal", "glorot_uniform"), ("glorot_uniform", "he_normal"), ("sigmoid", "softmax")]


@dataclass(frozen=True)
class Mutant:
    """One edit of one function of a solution cell.

    Attributes
    ----------
    function : str
        The stub (function name) the edit is in.
    id : str
        ``<function>:L<line>c<column>:<operator>:<detail>``, line 1 being the ``def`` line.
    operator : str
        A key of :data:`OPERATORS`.
    source : str
        The whole cell's source with the edit (``ast.unparse``: comments dropped).
    """

    function: str
    id: str
    operator: str
    source: str


def _sites(fn: ast.FunctionDef) -> Iterator[tuple[ast.AST, str, str, object]]:
    """(node, operator, detail, edit) for every mutation site inside ``fn``; ``edit`` applied to a copy."""
    for node in ast.walk(fn):
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOP:
            new_op = _BINOP[type(node.op)]
            yield node, "binop", f"{type(node.op).__name__}->{new_op.__name__}", ("op", new_op())
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _CMP:
                    new_cmp = _CMP[type(op)]
                    yield node, "compare", f"{type(op).__name__}->{new_cmp.__name__}", ("cmp", i, new_cmp())
        elif isinstance(node, ast.Constant) and not isinstance(node.value, str) and node is not _docstring(fn):
            if isinstance(node.value, bool):
                yield node, "constant", f"{node.value}->{not node.value}", ("value", not node.value)
            elif isinstance(node.value, int):
                yield node, "constant", f"{node.value}->{node.value + 1}", ("value", node.value + 1)
            elif isinstance(node.value, float):
                new = 1.0 if node.value == 0 else 2 * node.value
                yield node, "constant", f"{node.value!r}->{new!r}", ("value", new)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for old, new in _STRINGS:
                if node.value == old:
                    yield node, "string", f"{old}->{new}", ("value", new)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            yield node, "negate", type(node.op).__name__, ("unwrap", "operand")
        elif isinstance(node, ast.BoolOp):
            other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            yield node, "boolop", f"{type(node.op).__name__}->{type(other).__name__}", ("op", other)
        elif isinstance(node, ast.IfExp):
            yield node, "ifexp", "body", ("unwrap", "body")
            yield node, "ifexp", "orelse", ("unwrap", "orelse")
        elif isinstance(node, ast.Call):
            for i, kw in enumerate(node.keywords):
                if kw.arg is not None:
                    yield node, "keyword", f"drop {kw.arg}", ("dropkw", i)
            for i in range(len(node.args) - 1):
                yield node, "argswap", f"args {i},{i + 1}", ("swapargs", i)
    for body_owner in ast.walk(fn):
        body = getattr(body_owner, "body", None)
        if not isinstance(body, list) or isinstance(body_owner, (ast.Module, ast.ClassDef)):
            continue
        stmts = [s for s in body if s is not _docstring_stmt(body_owner)]
        for s in stmts:
            if not isinstance(s, (ast.Return, ast.FunctionDef, ast.Pass)):
                yield s, "drop", type(s).__name__, ("drop", body_owner)
        for a, b in zip(stmts, stmts[1:]):
            yield a, "swap", f"with L{b.lineno - fn.lineno + 1}", ("swap", body_owner, b)


def _docstring_stmt(owner: ast.AST):
    body = getattr(owner, "body", None)
    if isinstance(owner, ast.FunctionDef) and body and isinstance(body[0], ast.Expr) \
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        return body[0]
    return None


def _docstring(fn: ast.FunctionDef):
    stmt = _docstring_stmt(fn)
    return None if stmt is None else stmt.value


def _apply(tree: ast.Module, path: list[int], edit: tuple) -> None:
    """Apply ``edit`` to the node at ``path`` (indices into ``ast.walk`` order) of ``tree``, in place."""
    nodes = list(ast.walk(tree))
    node = nodes[path[0]]
    kind = edit[0]
    if kind == "op":
        node.op = edit[1]
    elif kind == "cmp":
        node.ops[edit[1]] = edit[2]
    elif kind == "value":
        node.value = edit[1]
    elif kind == "dropkw":
        del node.keywords[edit[1]]
    elif kind == "swapargs":
        i = edit[1]
        node.args[i], node.args[i + 1] = node.args[i + 1], node.args[i]
    elif kind == "unwrap":
        parent, field, index = _parent(tree, node)
        replacement = getattr(node, edit[1])
        if index is None:
            setattr(parent, field, replacement)
        else:
            getattr(parent, field)[index] = replacement
    elif kind == "drop":
        owner = nodes[path[1]]
        i = owner.body.index(node)
        owner.body[i] = ast.copy_location(ast.Pass(), node)
    elif kind == "swap":
        owner, other = nodes[path[1]], nodes[path[2]]
        i, j = owner.body.index(node), owner.body.index(other)
        owner.body[i], owner.body[j] = owner.body[j], owner.body[i]


def _parent(tree: ast.AST, child: ast.AST) -> tuple[ast.AST, str, int | None]:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is child:
                return parent, field, None
            if isinstance(value, list) and any(v is child for v in value):
                return parent, field, next(i for i, v in enumerate(value) if v is child)
    raise ValueError("node without a parent")


def mutants(source: str, functions: list[str] | None = None) -> list[Mutant]:
    """Every mutant of the functions of ``source`` (a solution cell, solution marks removed).

    Parameters
    ----------
    source : str
        Python source defining the stub(s).
    functions : list of str, optional
        Only these top-level functions (default: every top-level function).

    Returns
    -------
    list of Mutant, in source order; mutants whose source equals another's or the original's are dropped.
    """
    tree = ast.parse(source)
    original = ast.unparse(tree)
    index = {id(n): i for i, n in enumerate(ast.walk(tree))}
    seen = {original}
    out: list[Mutant] = []
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or (functions is not None and fn.name not in functions):
            continue
        for node, operator, detail, edit in _sites(fn):
            extra = [index[id(e)] for e in edit[1:] if isinstance(e, ast.AST) and id(e) in index]
            copy_tree = copy.deepcopy(tree)
            _apply(copy_tree, [index[id(node)], *extra], edit)
            try:
                text = ast.unparse(ast.fix_missing_locations(copy_tree))
                compile(text, "<mutant>", "exec")
            except (SyntaxError, ValueError, TypeError):
                continue
            if text in seen:
                continue
            seen.add(text)
            line, col = getattr(node, "lineno", fn.lineno), getattr(node, "col_offset", 0)
            out.append(Mutant(fn.name, f"{fn.name}:L{line - fn.lineno + 1}c{col}:{operator}:{detail}", operator, text))
    return out
