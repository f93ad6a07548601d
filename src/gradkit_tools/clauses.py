"""Spec-clause tables: every clause of every stub's specification, and the hidden test that grades it.

``course/<name>/clauses.yml`` maps each stub to its clauses. A clause quotes the specification (the stub's
docstring or the question's text in the master, whitespace aside) and names the hidden tests that grade it
(``tests:``, a banded test by its name) or says why it is not graded (``not_graded:``, one line). The file is
checked against its sources (:func:`problems`): every quote occurs in the master, every named test is a hidden
test of a question that calls the stub, every clause has exactly one of the two, every stub with a solution
has a table, and every line of a stub's docstring is quoted by some clause, so a clause added to a docstring
cannot go unmapped. :func:`render` writes the tables into the assignment's NOTES.md, between
``<!-- BEGIN GENERATED: clauses -->`` and ``<!-- END GENERATED: clauses -->`` (``gradkit notes``).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from gradkit_tools import master as master_reader
from gradkit_tools.course import assignment

__all__ = ["Clause", "BEGIN", "END", "load", "problems", "render", "write", "stale"]

BEGIN = "<!-- BEGIN GENERATED: clauses -->"
END = "<!-- END GENERATED: clauses -->"
_BLOCK = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.S)
_HEADERS = re.compile(r"^(-+|Parameters|Returns|Raises|Notes|Structure \(layer names in brackets\))$")


@dataclass(frozen=True)
class Clause:
    """One clause of a stub's specification: the quoted ``text`` and either ``tests`` or ``not_graded``."""

    stub: str
    text: str
    tests: tuple[str, ...] = ()
    not_graded: str | None = None


def _norm(text: str) -> str:
    return " ".join(text.split())


def load(name: str) -> dict[str, list[Clause]]:
    """``{stub: [Clause, ...]}`` from ``course/<name>/clauses.yml`` (empty when there is none)."""
    path = assignment(name).folder / "clauses.yml"
    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text()) or {}
    out: dict[str, list[Clause]] = {}
    for stub, rows in doc.items():
        if not isinstance(rows, list):
            raise ValueError(f"{path}: {stub}: a list of clauses expected")
        out[stub] = [Clause(stub, str(r.get("clause", "")), tuple(r.get("tests") or ()), r.get("not_graded"))
                     for r in rows]
    return out


def _stubs(name: str) -> dict[str, tuple[str, str | None]]:
    """``{stub: (question, docstring or None)}`` of the functions the master's solutions define."""
    out = {}
    for q, cells in master_reader.solution_code(assignment(name).master).items():
        src = "".join(master_reader.strip_solution_marks(c) + "\n" for c in cells)
        for node in ast.parse(src).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                out[node.name] = (q, ast.get_docstring(node))
    return out


def _callers(name: str) -> dict[str, set[str]]:
    """``{stub: questions whose hidden tests take it as a parameter}``."""
    out: dict[str, set[str]] = {}
    for t in master_reader.test_cells(assignment(name).master).values():
        if t.hidden:
            params = re.search(rf"def {t.name}\((.*?)\)", t.source).group(1)
            for p in (s.strip() for s in params.split(",")):
                out.setdefault(p, set()).add(t.question)
    return out


def problems(name: str) -> list[str]:
    """Every way ``course/<name>/clauses.yml`` disagrees with the master (empty: none)."""
    a = assignment(name)
    table, stubs = load(name), _stubs(name)
    cells = list(master_reader.walk(a.master))
    source = _norm("\n".join(c.source for c in cells))
    hidden = {master_reader.band_test(t.name): t.question
              for t in master_reader.test_cells(a.master).values() if t.hidden}
    callers = _callers(name)
    out = [f"{stub}: no clause table" for stub in stubs if stub not in table]
    out += [f"{stub}: no stub of that name in the master" for stub in table if stub not in stubs]
    for stub, clauses in table.items():
        for c in clauses:
            where = f"{stub}: clause {c.text[:60]!r}"
            if not c.text.strip() or _norm(c.text) not in source:
                out.append(f"{where}: not quoted from the master")
            if bool(c.tests) == bool(c.not_graded):
                out.append(f"{where}: needs exactly one of tests: and not_graded:")
            for t in c.tests:
                if t not in hidden:
                    out.append(f"{where}: {t} is no hidden test of the master")
                elif hidden[t] not in callers.get(stub, set()):
                    out.append(f"{where}: {t} (of {hidden[t]}) does not take {stub}")
        out += [f"{stub}: docstring text {rest!r} is in no clause" for rest in _unquoted(
            stubs.get(stub, (None, None))[1] or "", [_norm(c.text) for c in clauses])]
    return out


def _unquoted(doc: str, quotes: list[str]) -> list[str]:
    """The stretches of ``doc`` (section headers aside) that no quote covers."""
    text = _norm("\n".join(ln for ln in doc.splitlines() if not _HEADERS.match(ln.strip())))
    covered = [False] * len(text)
    for q in quotes:
        start = text.find(q) if q else -1
        while start >= 0:
            covered[start:start + len(q)] = [True] * len(q)
            start = text.find(q, start + 1)
    gaps = re.findall(r"[^\x00]+", "".join("\x00" if c else ch for c, ch in zip(covered, text)))
    return [g.strip() for g in gaps if re.search(r"\w", g)]


def render(name: str) -> str:
    """The NOTES.md section: per stub its clauses, graded clauses and mutation figures (``mutation.json``, written
    by ``gradkit mutate --write``), then one table per stub (clause, graded by / why not)."""
    from gradkit_tools.mutation import recorded

    table = load(name)
    mutation = recorded(name)
    lines = [BEGIN, "Generated by `gradkit notes` from `clauses.yml` and `mutation.json`; do not edit by hand.", "",
             "| stub | clauses | graded | mutants | killed | equivalent | not graded | survivors | screen |",
             "|---|---|---|---|---|---|---|---|---|"]
    for stub, clauses in table.items():
        m = mutation.get(stub)
        figures = ("| n/a " * 6) if m is None else (
            f"| {m['mutants']} | {m['killed']} | {m['equivalent']} | {m.get('not_graded', 0)} | {len(m['survivors'])} "
            f"| {m['screen']} ")
        lines.append(f"| `{stub}` | {len(clauses)} | {sum(bool(c.tests) for c in clauses)} {figures}|")
    lines += ["", "Equivalent mutants and those that change only an ungraded clause are listed, each with its "
              "one-line argument, in `mutants.yml`.", ""]
    for stub, clauses in table.items():
        graded = sum(bool(c.tests) for c in clauses)
        lines += [f"**`{stub}`**: {len(clauses)} clauses, {graded} graded.", "",
                  "| clause | graded by | or not graded, because |", "|---|---|---|"]
        for c in clauses:
            text = _norm(c.text).replace("|", "\\|")
            tests = ", ".join(f"`{t}`" for t in c.tests)
            lines.append(f"| {text} | {tests} | {(c.not_graded or '').replace('|', '/')} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write(name: str) -> bool:
    """Write the section into NOTES.md (appended when absent); True when the file changed."""
    path = Path(assignment(name).notes_file)
    notes = path.read_text()
    block = render(name)
    new = _BLOCK.sub(lambda _: block, notes) if _BLOCK.search(notes) else notes.rstrip("\n") + "\n\n" + block + "\n"
    if new != notes:
        path.write_text(new)
    return new != notes


def stale(name: str) -> str | None:
    """None when NOTES.md holds the current section, else why not."""
    notes = Path(assignment(name).notes_file).read_text()
    m = _BLOCK.search(notes)
    if m is None:
        return "NOTES.md has no generated clauses section"
    return None if m.group(0) == render(name) else "NOTES.md's clauses section differs from clauses.yml"
