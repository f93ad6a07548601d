"""The one reader of Otter Assign master notebooks (raw-cell format).

Raw cells delimit the blocks: ``# ASSIGNMENT CONFIG`` (YAML), then per question
``# BEGIN QUESTION`` (its YAML config) ... ``# BEGIN SOLUTION`` / ``# END SOLUTION`` ...
``# BEGIN TESTS`` / ``# END TESTS`` ... ``# END QUESTION``; ``# BEGIN PROMPT`` / ``# END PROMPT``
optionally. A markdown cell holding a fenced ```` ```otter ```` block counts as the raw cell it
stands for. Each test cell may start with a ``# BEGIN TEST CONFIG`` ... ``# END TEST CONFIG``
string (YAML: ``hidden``, ``points``) and defines one ``test_...`` function.

:func:`walk` gives every cell with the question and block it lies in; release, the example
submissions, the leak scan and the tests read masters through it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import nbformat
import yaml

__all__ = ["MasterError", "MasterCell", "TestCell", "read", "cell_kind", "walk", "config_cell", "questions",
           "solution_code", "test_cells", "strip_solution_marks", "band_test", "cell_function"]

_BLOCK = re.compile(r"#\s+(begin|end)\s+(question|prompt|solution|tests)\b", re.IGNORECASE)
_CONFIG = re.compile(r"#\s+assignment\s+config\b", re.IGNORECASE)
_TEST_CONFIG = re.compile(r'^\s*"""\s*#\s*BEGIN TEST CONFIG\s*\n(.*?)\n\s*"""\s*#\s*END TEST CONFIG[^\n]*\n?', re.S)
_MARKER = re.compile(r"^[ \t]*# (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)
_PROMPT = re.compile(r"^[ \t]*# BEGIN PROMPT[ \t]*\n.*?^[ \t]*# END PROMPT[ \t]*\n?", re.MULTILINE | re.DOTALL)
_LINE_MARK = re.compile(r"[ \t]*# SOLUTION( NO PROMPT)?[ \t]*$", re.MULTILINE)


class MasterError(ValueError):
    """A master notebook does not follow the format; the message says where."""


@dataclass(frozen=True)
class MasterCell:
    """One cell of a master: its index, type and source (a fenced raw cell unfenced), the
    question it lies in (``None`` outside questions) and its block (``"solution"``, ``"tests"``,
    ``"prompt"`` or ``None``). Marker cells have ``marker`` set (e.g. ``"begin solution"``)."""

    index: int
    kind: str
    source: str
    question: str | None
    block: str | None
    marker: str | None
    cell: Any


@dataclass(frozen=True)
class TestCell:
    """A test cell of a master: its function name, question, visibility, points and source."""

    name: str
    question: str
    hidden: bool
    points: float | None
    source: str


def read(master: str | Path | Any) -> Any:
    """The notebook of ``master`` (a path, or a notebook returned as is)."""
    return master if hasattr(master, "cells") else nbformat.read(str(master), as_version=4)


def cell_kind(cell: Any) -> tuple[str, str]:
    """``(type, source)`` of a cell, a markdown ```` ```otter ```` fence read as a raw cell."""
    src = cell.get("source", "")
    src = "".join(src) if isinstance(src, list) else str(src)
    lines = src.strip().splitlines()
    if cell.get("cell_type") == "markdown" and len(lines) >= 2 and lines[0].strip() == "```otter" \
            and lines[-1].strip() == "```":
        return "raw", "\n".join(lines[1:-1])
    return cell.get("cell_type", ""), src


def _yaml_body(src: str) -> dict:
    body = yaml.safe_load("\n".join(src.strip().splitlines()[1:])) or {}
    if not isinstance(body, dict):
        raise MasterError(f"the YAML after {src.strip().splitlines()[0]!r} is not a mapping")
    return body


def _question_name(src: str, strict: bool) -> str:
    if strict:
        return str(_yaml_body(src).get("name"))
    m = re.search(r"^\s*name\s*:\s*(\S+)", src, re.MULTILINE)  # a broken header still names its question
    return m.group(1).strip("'\"") if m else "?"


def walk(master: str | Path | Any, *, strict: bool = True) -> Iterator[MasterCell]:
    """Every cell of ``master`` in order, with the question and block it lies in. With ``strict``
    false (the leak scan), a question header that is not valid YAML is read for its name only."""
    question: str | None = None
    block: str | None = None
    for i, cell in enumerate(read(master).cells):
        kind, src = cell_kind(cell)
        first = src.strip().splitlines()[0] if src.strip() else ""
        marker = None
        if kind == "raw" and (m := _BLOCK.match(first)):
            begin, what = m.group(1).lower() == "begin", m.group(2).lower()
            marker = f"{m.group(1).lower()} {what}"
            if what == "question":
                question = _question_name(src, strict) if begin else None
            else:
                block = what if begin else None
        elif kind == "raw" and _CONFIG.match(first):
            marker = "assignment config"
        yield MasterCell(i, kind, src, question, block, marker, cell)


def config_cell(master: str | Path | Any) -> tuple[int, dict]:
    """``(index, config)`` of the ``# ASSIGNMENT CONFIG`` cell."""
    for c in walk(master):
        if c.marker == "assignment config":
            return c.index, _yaml_body(c.source)
    raise MasterError("no raw cell starting with `# ASSIGNMENT CONFIG`")


def questions(master: str | Path | Any) -> dict[str, dict]:
    """``{question name: its BEGIN QUESTION config}`` in master order."""
    return {str(cfg["name"]): cfg for c in walk(master) if c.marker == "begin question"
            for cfg in [_yaml_body(c.source)]}


def strip_solution_marks(src: str) -> str:
    """A solution cell as the solution reads: Otter's ``# BEGIN/END SOLUTION`` lines,
    ``# BEGIN/END PROMPT`` blocks and ``# SOLUTION`` line marks removed."""
    return _LINE_MARK.sub("", _MARKER.sub("", _PROMPT.sub("", src)))


def solution_code(master: str | Path | Any, *, markdown: bool = False) -> dict[str, list[str]]:
    """``{question: [source of each solution code cell]}`` in master order, as written (marks
    kept); with ``markdown``, a manual question's markdown answer cells count too."""
    out: dict[str, list[str]] = {}
    for c in walk(master):
        if c.question and c.block == "solution" and not c.marker and (
                c.kind == "code" or (markdown and c.kind == "markdown")):
            out.setdefault(c.question, []).append(c.source)
    return out


def test_cells(master: str | Path | Any) -> dict[str, TestCell]:
    """``{test function name: TestCell}`` of the master's test blocks, in master order."""
    out: dict[str, TestCell] = {}
    for c in walk(master):
        if c.block != "tests" or c.kind != "code" or not c.question:
            continue
        name = re.search(r"^def (\w+)\(", c.source, re.M)
        if name is None:
            raise MasterError(f"cell {c.index} (tests of {c.question}) defines no test function")
        conf = _TEST_CONFIG.match(c.source)
        conf = (yaml.safe_load(conf.group(1)) or {}) if conf else {}
        out[name.group(1)] = TestCell(name.group(1), c.question, bool(conf.get("hidden", False)),
                                      conf.get("points"), c.source)
    return out


def band_test(case: str) -> str:
    """The test a case belongs to: a banded case ``<test>_band_<k>`` counts as ``<test>``."""
    return re.sub(r"_band_\d+$", "", case)


def cell_function(src: str) -> Any:
    """The ``test_...`` function a test cell defines, compiled without running the cell's own call line."""
    body = "\n".join(ln for ln in src.splitlines() if not re.match(r"^\w+\(.*\)\s*$", ln))
    ns: dict[str, Any] = {}
    exec(compile(body, "<test cell>", "exec"), ns)
    (fn,) = [v for k, v in ns.items() if k.startswith("test_") and callable(v)]
    return fn
