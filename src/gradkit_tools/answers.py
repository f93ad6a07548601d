"""The catalogue's answers as Python objects, for the unit tests and the calibration's power runs.

An entry of ``course/<name>/answers.yml`` says how a submission differs from the solution
(:func:`gradkit_tools.examples.answer_sources`). :func:`namespace` runs the catalogue's
``prelude:`` (the imports and constants a notebook's set-up cells define, without the plots and
long studies) and then every question's answer code of the entry, as the notebook would, and
returns the globals: the objects a hidden test receives by name. A question left as handed out
gets the student release's stub. The code is registered with :mod:`linecache`, as IPython registers
a notebook's cells, so ``inspect.getsource`` finds it: a hidden test's seed
(:func:`gradkit_grader.seeding.submission_seed`, from the source text where it can be found) is then
the one the graded example notebook of the same entry gets (tests/test_seeding.py).

:func:`wrong_for` lists the wrong answers a hidden test must reject (``fails:``); ``gradkit calibrate``
measures its power against those of them marked ``power: true``.
"""
from __future__ import annotations

import json
import linecache
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from gradkit_tools.course import Assignment
from gradkit_tools.examples import CatalogueError, answer_cells, answer_sources, load_catalogue, solution_answers

__all__ = ["prelude", "entry_code", "namespace", "run_as_cell", "entries", "entry_fails", "wrong_for"]


@lru_cache(maxsize=None)
def _catalogue(answers_file: Path, mtime: float) -> tuple[str, dict[str, dict]]:
    doc = yaml.safe_load(answers_file.read_text()) or {}
    return str(doc.get("prelude") or ""), load_catalogue(answers_file)


def _load(assignment: Assignment) -> tuple[str, dict[str, dict]]:
    f = assignment.answers_file
    return _catalogue(f, f.stat().st_mtime if f.exists() else 0.0)


def prelude(assignment: Assignment) -> str:
    """The catalogue's ``prelude:`` code (empty when it has none)."""
    return _load(assignment)[0]


def entries(assignment: Assignment, kind: str | None = None) -> dict[str, dict]:
    """The catalogue's entries (of ``kind`` only, when given)."""
    return {k: e for k, e in _load(assignment)[1].items() if kind is None or e["kind"] == kind}


def _stubs(assignment: Assignment, assignments: Path) -> dict[str, list[str]]:
    student = json.loads((assignments / assignment.name / f"{assignment.name}.ipynb").read_text())
    cells = answer_cells(student, solution_answers(assignment.master))
    return {q: ["".join(student["cells"][i]["source"]) for i in idx] for q, idx in cells.items()}


def entry_code(assignment: Assignment, name: str, *, assignments: str | Path = "assignments") -> str:
    """The prelude and every question's answer code of entry ``name``, in master order."""
    entry = entries(assignment).get(name)
    if entry is None:
        raise CatalogueError(f"{assignment.answers_file}: no entry {name!r}")
    if "raw" in entry or "zip" in entry:
        raise CatalogueError(f"{assignment.answers_file}: entry {name!r} is a file, not answer code")
    sources = answer_sources(name, entry, solution_answers(assignment.master))
    stubs = _stubs(assignment, Path(assignments)) if any(s is None for s in sources.values()) else {}
    parts = [prelude(assignment)]
    for q, srcs in sources.items():
        parts += stubs[q] if srcs is None else srcs
    return "\n".join(p.rstrip("\n") for p in parts) + "\n"


def namespace(assignment: Assignment, name: str, *, assignments: str | Path = "assignments") -> dict[str, Any]:
    """The globals after running :func:`entry_code` of entry ``name``."""
    return run_as_cell(entry_code(assignment, name, assignments=assignments), f"<{assignment.name}: {name}>")


def run_as_cell(code: str, filename: str) -> dict[str, Any]:
    """The globals after running ``code`` as a notebook cell is run: registered with :mod:`linecache` under
    ``filename`` first (as IPython registers a cell), so ``inspect.getsource`` finds its functions' source.

    One ``filename`` per code text: a second text under the same name would replace the first one's lines.
    """
    # no modification time: linecache.checkcache keeps the entry (it cannot be re-read from a file)
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(code, filename, "exec"), ns)
    return ns


def entry_fails(entry: dict, backend: str | None = None) -> list[str]:
    """The hidden tests (or cases) an entry fails under Keras ``backend`` (default: the current one):
    its ``fails:`` plus its ``fails_on:`` list for that backend."""
    if backend is None:
        import keras

        backend = keras.backend.backend()
    return list(entry.get("fails") or []) + list((entry.get("fails_on") or {}).get(backend) or [])


def wrong_for(assignment: Assignment, test: str, *, power: bool = False) -> list[str]:
    """Names of the wrong answers whose ``fails:`` lists hidden test ``test`` (its case prefix for a
    banded test), sorted; with ``power``, only those marked ``power: true`` (the calibration's)."""
    return sorted(k for k, e in entries(assignment, "wrong").items()
                  if (e.get("power") or not power)
                  and any(f == test or f.startswith(f"{test}_band_") for f in entry_fails(e)))
