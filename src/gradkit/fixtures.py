"""Fixture submissions: notebooks with known scores, built from a manifest.

Each assignment's fixtures live in ``tests/fixtures/submissions/<name>/``: one or more
``*.yml`` manifests (``manifest.yml``, ``tamper.yml``, ...) saying how each fixture is made from
the student notebook (``assignments/<name>/<name>.ipynb``) and the master's solutions, and what
it must score; ``gradkit fixtures <name>`` writes the notebooks next to them
(:func:`write_fixtures`), and ``gradkit validate`` grades them (:mod:`gradkit.validate`).

A fixture entry::

    wrong_he_fan_out:                 # -> wrong_he_fan_out.ipynb
      kind: wrong                     # correct | wrong | blank | malformed | tamper
      why: He variance from fan_out
      answers: {q5: {replace: [["fan_in", "fan_out"]]}}
      expect: {q5: 0}                 # unlisted questions: full marks (0 with ``blank: true``)

``answers.<q>`` takes ``code`` (replaces the question's first answer cell, empties the others),
``replace`` (``[[old, new], ...]`` edits of the solution code; each ``old`` must occur),
``append`` (code added to the last answer cell) or ``blank: true``. Fixture keys: ``blank``,
``extra_cells``, ``drop_checks``, ``raw`` (the file is this text), ``zip`` (``{path: text}``: the
fixture is a ``.zip`` like ``grader.export()`` writes, holding the notebook as ``<name>.ipynb``
plus these files), ``status``, ``reason``, ``flags``.
"""
from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import nbformat
import yaml

__all__ = ["FixtureError", "KINDS", "load_fixtures", "solution_answers", "answer_cells", "build_fixture",
           "fixture_file", "write_fixtures", "expected_scores"]

KINDS = ("correct", "wrong", "blank", "malformed", "tamper")
_FIXTURE_KEYS = {"kind", "why", "answers", "blank", "extra_cells", "drop_checks", "raw", "zip", "expect",
                 "status", "reason", "flags"}
_ANSWER_KEYS = {"code", "replace", "append", "blank"}
_CHECK = re.compile(r"""grader\.check\(\s*["']([^"']+)["']\s*\)""")
_MARKER = re.compile(r"^[ \t]*# (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)
_PROMPT = re.compile(r"^[ \t]*# BEGIN PROMPT[ \t]*\n.*?^[ \t]*# END PROMPT[ \t]*\n?", re.MULTILINE | re.DOTALL)
_LINE_MARK = re.compile(r"[ \t]*# SOLUTION( NO PROMPT)?[ \t]*$", re.MULTILINE)


class FixtureError(ValueError):
    """A manifest or a fixture cannot be built; the message names the file, the fixture and the key."""


def load_fixtures(folder: str | Path) -> dict[str, dict]:
    """All fixture entries of the ``*.yml`` manifests in ``folder``: ``{name: entry}`` (name order)."""
    folder = Path(folder)
    manifests = sorted(folder.glob("*.yml"))
    if not manifests:
        raise FixtureError(f"{folder}: no *.yml fixture manifest")
    out: dict[str, dict] = {}
    for path in manifests:
        doc = yaml.safe_load(path.read_text()) or {}
        if not isinstance(doc.get("fixtures"), dict):
            raise FixtureError(f"{path}: needs a `fixtures:` mapping")
        if doc.get("assignment") not in (None, folder.name):
            raise FixtureError(f"{path}: assignment {doc.get('assignment')!r} but the folder is {folder.name!r}")
        for name, entry in doc["fixtures"].items():
            where = f"{path.name}: fixture {name!r}"
            if name in out:
                raise FixtureError(f"{where} is defined twice")
            if not re.fullmatch(r"[A-Za-z0-9_.()-][A-Za-z0-9_.() -]*", str(name)):
                raise FixtureError(f"{where}: use letters, digits, spaces and _ - . ( ) in fixture names")
            entry = dict(entry or {})
            if unknown := set(entry) - _FIXTURE_KEYS:
                raise FixtureError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_FIXTURE_KEYS)})")
            if entry.get("kind") not in KINDS:
                raise FixtureError(f"{where}: kind must be one of {KINDS}, got {entry.get('kind')!r}")
            if entry.get("status", "graded") not in ("graded", "ungradable"):
                raise FixtureError(f"{where}: status must be graded or ungradable")
            for q, edit in (entry.get("answers") or {}).items():
                if not isinstance(edit, dict) or not edit or set(edit) - _ANSWER_KEYS:
                    raise FixtureError(f"{where}: answers.{q} must be a mapping with keys from {sorted(_ANSWER_KEYS)}")
            entry["manifest"] = path.name
            out[str(name)] = entry
    return dict(sorted(out.items()))


def _master_cells(master: Path):
    """Yield ``(question or None, in_solution_block, cell)`` for the master's cells."""
    nb = nbformat.read(str(master), as_version=4)
    question, block = None, False
    for cell in nb.cells:
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        if cell.cell_type == "raw":
            if first.startswith("# BEGIN QUESTION"):
                question = (yaml.safe_load("\n".join(cell.source.strip().splitlines()[1:])) or {}).get("name")
            elif first.startswith("# END QUESTION"):
                question = None
            elif first.startswith("# BEGIN SOLUTION"):
                block = True
            elif first.startswith("# END SOLUTION"):
                block = False
            continue
        yield question, block, cell


def solution_answers(master: str | Path) -> dict[str, list[str]]:
    """``{question: [code of each solution code cell]}`` of a master as the solution reads: Otter's
    ``# BEGIN/END SOLUTION`` lines, ``# BEGIN/END PROMPT`` blocks and ``# SOLUTION`` line marks removed."""
    out: dict[str, list[str]] = {}
    for question, block, cell in _master_cells(Path(master)):
        if question and block and cell.cell_type == "code":
            out.setdefault(question, []).append(_LINE_MARK.sub("", _MARKER.sub("", _PROMPT.sub("", cell.source))))
    return out


def answer_cells(student: dict, solutions: dict[str, list[str]]) -> dict[str, list[int]]:
    """``{question: [indices of its code answer cells]}`` of a student notebook.

    Otter writes one code answer cell (tagged ``otter_answer_cell``) per solution code cell of
    the master, in the master's order, so the ``n``-th answer cell belongs to the question of the
    ``n``-th solution cell (``solutions`` from :func:`solution_answers`, in master order).
    """
    idx = [i for i, cell in enumerate(student["cells"])
           if cell["cell_type"] == "code" and "otter_answer_cell" in cell.get("metadata", {}).get("tags", [])]
    owners = [q for q, cells in solutions.items() for _ in cells]
    if len(idx) != len(owners):
        raise FixtureError(f"{len(idx)} code answer cells in the student notebook but {len(owners)} solution "
                           "code cells in the master: release the assignment again (gradkit release)")
    out: dict[str, list[int]] = {}
    for q, i in zip(owners, idx):
        out.setdefault(q, []).append(i)
    return out


def _set_source(cell: dict, src: str) -> None:
    cell["source"] = src
    cell["outputs"], cell["execution_count"] = [], None


def fixture_file(name: str, entry: dict) -> str:
    """File name of fixture ``name``: ``<name>.zip`` for ``zip`` fixtures, else ``<name>.ipynb``."""
    return f"{name}.zip" if "zip" in entry else f"{name}.ipynb"


def _zip_bytes(files: dict[str, str]) -> bytes:
    """A zip of ``files`` with fixed dates and order, so a rebuild is byte-identical."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            zf.writestr(info, files[path])
    return buf.getvalue()


def build_fixture(name: str, entry: dict, student: dict, solutions: dict[str, list[str]],
                  assignment: str = "submission") -> bytes:
    """The file bytes of fixture ``name``: the student notebook with its answers filled in as
    ``entry`` says (inside a zip for ``zip`` fixtures)."""
    if "raw" in entry:
        return str(entry["raw"]).encode()
    text = _notebook_text(name, entry, student, solutions)
    if "zip" in entry:
        return _zip_bytes({f"{assignment}.ipynb": text, **{str(k): str(v) for k, v in entry["zip"].items()}})
    return text.encode()


def _notebook_text(name: str, entry: dict, student: dict, solutions: dict[str, list[str]]) -> str:
    nb = copy.deepcopy(student)
    cells = answer_cells(nb, solutions)
    edits = entry.get("answers") or {}
    if unknown := set(edits) - set(cells):
        raise FixtureError(f"fixture {name!r}: no answer cells for {sorted(unknown)} (questions: {sorted(cells)})")
    for q, idx in cells.items():
        sols = solutions[q]
        edit = edits.get(q, {})
        if entry.get("blank") and not set(edit) & {"code", "replace", "append"} or edit.get("blank"):
            continue  # as handed out
        srcs = list(sols)
        if "code" in edit:
            srcs = [str(edit["code"]).rstrip("\n")] + [""] * (len(srcs) - 1)
        for old, new in edit.get("replace", []):
            if not any(old in s for s in srcs):
                raise FixtureError(f"fixture {name!r}: answers.{q}.replace: {old!r} does not occur in the solution")
            srcs = [s.replace(old, new) for s in srcs]
        if "append" in edit:
            srcs[-1] = srcs[-1].rstrip("\n") + "\n" + str(edit["append"]).rstrip("\n")
        for i, src in zip(idx, srcs):
            _set_source(nb["cells"][i], src.rstrip("\n"))
    if entry.get("drop_checks"):
        nb["cells"] = [c for c in nb["cells"]
                       if not (c["cell_type"] == "code" and _CHECK.search("".join(c["source"])))]
    for k, src in enumerate(entry.get("extra_cells") or []):
        nb["cells"].append({"cell_type": "code", "execution_count": None, "id": f"fixture-extra-{k}",
                            "metadata": {}, "outputs": [], "source": str(src).rstrip("\n")})
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_fixtures(name: str, *, fixtures: str | Path = "tests/fixtures/submissions",
                   assignments: str | Path = "assignments", solutions: str | Path = "solutions",
                   check: bool = False) -> list[Path]:
    """Write (or with ``check``, compare) every fixture notebook of assignment ``name``.

    Returns the fixture files. With ``check``, raises :class:`FixtureError` listing the files
    that differ from a fresh build, are missing, or are stray (``.ipynb`` not in a manifest).
    """
    folder = Path(fixtures) / name
    entries = load_fixtures(folder)
    student = json.loads((Path(assignments) / name / f"{name}.ipynb").read_text())
    sols = solution_answers(Path(solutions) / name / f"{name}.ipynb")
    paths, stale = [], []
    for fname, entry in entries.items():
        data, path = build_fixture(fname, entry, student, sols, name), folder / fixture_file(fname, entry)
        paths.append(path)
        if not check:
            path.write_bytes(data)
        elif not path.is_file() or path.read_bytes() != data:
            stale.append(f"{path} ({'missing' if not path.is_file() else 'differs from a fresh build'})")
    stray = sorted({*folder.glob("*.ipynb"), *folder.glob("*.zip")} - set(paths))
    if check and (stale or stray):
        raise FixtureError("fixtures out of date (run `gradkit fixtures " + name + "`): "
                           + "; ".join([*stale, *(f"{p} (not in a manifest)" for p in stray)]))
    for p in stray:
        p.unlink()
    return paths


def expected_scores(entry: dict, questions: dict[str, float]) -> dict[str, float]:
    """``{question: points}`` the fixture must score, given the autograder's ``{question: points}``."""
    expect = entry.get("expect") or {}
    if unknown := set(expect) - set(questions):
        raise FixtureError(f"expect names {sorted(unknown)}, not autograded questions {sorted(questions)}")
    base = 0.0 if entry.get("blank") or entry.get("status") == "ungradable" else 1.0
    return {q: float(expect.get(q, base * p)) for q, p in questions.items()}
