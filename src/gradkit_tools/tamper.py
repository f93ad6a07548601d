"""Static tamper scan of a submission notebook.

:func:`scan_submission` runs on every notebook ``gradkit grade`` grades. It
parses each code cell (after IPython's own transformation of magics) and
reports syntax errors plus *flags*: code that touches ``tests/``,
``grading.yml`` or gradkit's sources, imports the grader's packages, rebinds ``grader``, reaches into
``sys.modules`` or ``builtins``, monkeypatches attributes of an imported
library (``np.allclose = ...``, ``setattr(numpy, ...)``, ``keras.ops.x = ...``)
or runs dynamic code (``exec``/``eval``), which could hide any of these.
Flags do not change a grade; they tell a TA what to read.

>>> syntax, flags = scan_submission({"cells": [{"cell_type": "code",
...     "source": "import numpy as np\\nnp.allclose = lambda *a, **k: True"}]})
>>> [str(f) for f in flags]
['cell 1 line 2: monkeypatches np.allclose']
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = ["CellIssue", "scan_submission", "to_python"]


@dataclass(frozen=True)
class CellIssue:
    """A finding in one code cell of a submission.

    ``cell`` is the index among all cells (markdown included) counting from 0;
    messages count from 1, as a person reading the notebook does.
    """

    cell: int
    line: int
    message: str

    def __str__(self) -> str:
        return f"cell {self.cell + 1} line {self.line}: {self.message}"


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


_PATH_RULES = [
    (re.compile(r"(^|[/\\])tests([/\\]|$)|^tests$"), "touches tests/"),
    (re.compile(r"grading\.ya?ml"), "touches grading.yml"),
    (re.compile(r"(^|[/\\])gradkit(_grader)?[/\\]|\.pth\b|site-packages"), "touches installed/support code"),
    (re.compile(r"\.pkl$|results\.json$"), "touches grading results"),
]
#: Calls that run code after the cell that made them (when otter's own code runs) or outside the
#: kernel's control; a student's answer never needs them, a forged result would.
_DEFERRED = {"atexit.register": "registers exit code (atexit)", "signal.signal": "installs a signal handler",
             "os.fork": "forks the kernel", "threading.Thread": "starts a thread", "threading.Timer": "starts a timer",
             "sys.settrace": "installs a trace hook", "sys.setprofile": "installs a profile hook",
             "sys.addaudithook": "installs an audit hook"}
_DYNAMIC = {"exec", "eval", "compile", "__import__"}
#: The grader's packages: a notebook never needs them (their reference answers are hidden in grading).
_GRADER_PACKAGES = {"gradkit_grader", "gradkit_tools"}
# Attributes that are documented settings, not library code (``plt.rcParams``,
# ``pd.options.display``, ``os.environ``): assigning them is not monkeypatching.
_SETTINGS = {"rcParams", "options", "environ"}


def to_python(src: str) -> str:
    """A cell's source as plain Python: IPython's own rewrite of ``%magics`` and ``!shell`` lines."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(src)


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover - unparse handles every expression node
        return type(node).__name__


class _TamperVisitor(ast.NodeVisitor):
    def __init__(self, modules: set[str]):
        self.modules = modules
        self.found: list[tuple[int, str]] = []

    def flag(self, node: ast.AST, msg: str) -> None:
        self.found.append((getattr(node, "lineno", 0), msg))

    # imports --------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.name.split(".")[0] == "builtins":
                self.flag(node, "imports builtins")
            if a.name.split(".")[0] in _GRADER_PACKAGES:
                self.flag(node, f"imports the grader ({a.name})")
            if (a.asname or a.name) == "grader":
                self.flag(node, "rebinds grader")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        if mod.split(".")[0] == "builtins":
            self.flag(node, "imports from builtins")
        if mod.split(".")[0] in _GRADER_PACKAGES:
            self.flag(node, f"imports the grader ({mod})")
        if mod == "sys" and any(a.name == "modules" for a in node.names):
            self.flag(node, "touches sys.modules")
        if any((a.asname or a.name) == "grader" for a in node.names):
            self.flag(node, "rebinds grader")
        self.generic_visit(node)

    # names and attributes -------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if node.id == "__builtins__":
            self.flag(node, "touches __builtins__")
        if node.id == "grader" and isinstance(node.ctx, (ast.Store, ast.Del)):
            self.flag(node, "rebinds grader")
        elif node.id in self.modules and isinstance(node.ctx, (ast.Store, ast.Del)):
            self.flag(node, f"rebinds the module name {node.id}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "modules" and _root_name(node) == "sys":
            self.flag(node, "touches sys.modules")
        if node.attr in ("__builtins__", "__dict__") and _root_name(node) in self.modules:
            self.flag(node, f"touches {_dotted(node)}")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            root = _root_name(node)
            if root == "grader":
                self.flag(node, f"patches {_dotted(node)}")
            elif root in self.modules and not _SETTINGS.intersection(_dotted(node).split(".")):
                self.flag(node, f"monkeypatches {_dotted(node)}")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "__dict__" and _root_name(node) in self.modules:
            self.flag(node, f"monkeypatches {_dotted(node.value)}[...]")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        fn = node.func
        name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
        if name in ("setattr", "delattr") and node.args:
            root = _root_name(node.args[0])
            if root in self.modules or root == "grader":
                self.flag(node, f"monkeypatches {_dotted(node.args[0])} via {name}")
        if isinstance(fn, ast.Name) and fn.id in _DYNAMIC:
            self.flag(node, f"runs dynamic code ({fn.id})")
        if name == "reload":
            self.flag(node, "reloads a module")
        if (why := _DEFERRED.get(_dotted(fn))) is not None:
            self.flag(node, why)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, (str, bytes)):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            for rx, msg in _PATH_RULES:
                if rx.search(text.strip()):
                    self.flag(node, f"{msg} ({text.strip()[:40]!r})")

    def _def(self, node: ast.AST) -> None:
        if getattr(node, "name", None) == "grader":
            self.flag(node, "rebinds grader")
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _def


def _is_otter_init(stmt: ast.stmt) -> bool:
    """``grader = otter.Notebook(...)``, the init cell otter writes."""
    return (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id == "grader"
            and isinstance(stmt.value, ast.Call) and _dotted(stmt.value.func) in ("otter.Notebook", "Notebook"))


def scan_submission(nb: dict) -> tuple[list[CellIssue], list[CellIssue]]:
    """Syntax errors and tamper flags of a submission notebook.

    Parameters
    ----------
    nb : dict
        The notebook as loaded JSON (nbformat 4).

    Returns
    -------
    syntax_errors, flags : list of CellIssue
        ``cell`` is the index among all cells (markdown included), as a
        student sees them in Jupyter, counting from 0.
    """
    cells = nb.get("cells", [])
    trees: list[tuple[int, ast.Module]] = []
    syntax: list[CellIssue] = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        try:
            trees.append((i, ast.parse(to_python(_source(cell)))))
        except SyntaxError as exc:
            syntax.append(CellIssue(i, exc.lineno or 0, f"{type(exc).__name__}: {exc.msg}"))
        except Exception as exc:  # noqa: BLE001 - IPython's transformer on odd input
            syntax.append(CellIssue(i, 0, f"cannot parse: {exc}"))
    modules: set[str] = set()
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                modules.update(a.asname or a.name for a in node.names if a.name != "*")
    modules.discard("grader")
    flags: list[CellIssue] = []
    for i, tree in trees:
        body = [s for s in tree.body if not _is_otter_init(s)]
        visitor = _TamperVisitor(modules)
        for stmt in body:
            visitor.visit(stmt)
        seen = set()
        for line, msg in visitor.found:
            if msg not in seen:
                seen.add(msg)
                flags.append(CellIssue(i, line, msg))
    return syntax, flags
