"""Example submissions with known scores, built from an assignment's catalogue of answers.

Each assignment folder has ONE catalogue, ``course/<name>/answers.yml``: right answers (other
correct ways to write each stub), wrong answers (one per common mistake), a blank notebook,
malformed and tampering submissions, each saying how it is made from the student notebook
(``assignments/<name>/<name>.ipynb``) and the master's solutions, and what it must score.
``gradkit examples <name>`` writes them to ``course/<name>/submissions/`` (:func:`write_submissions`),
``gradkit grade-examples`` grades them with the released autograder
(:mod:`gradkit_tools.grade_examples`); the unit tests and the calibration's power runs read the
same entries (``fails``: the hidden tests a wrong answer must fail).

An entry::

    wrong_he_fan_out:                 # -> submissions/wrong_he_fan_out.ipynb
      kind: wrong                     # correct | wrong | blank | malformed | tamper
      why: He variance from fan_out
      answers: {q5: {replace: [["fan_in", "fan_out"]]}}
      expect: {q5: 0}                 # unlisted questions: full marks (0 with ``blank: true``)
      fails: [test_he_normal_distribution]

``answers.<q>`` takes ``code`` (replaces the question's first answer cell, empties the others),
``replace`` (``[[old, new], ...]`` edits of the solution code; each ``old`` must occur),
``append`` (code added to the last answer cell) or ``blank: true``. Entry keys: ``blank``,
``extra_cells``, ``drop_checks``, ``raw`` (the file is this text), ``zip`` (``{path: text}``: the
submission is a ``.zip`` like ``grader.export()`` writes, holding the notebook as ``<name>.ipynb``
plus these files), ``status``, ``reason``, ``flags``; for the unit tests, which run the hidden tests
in process on the entry's answers (:mod:`gradkit_tools.answers`): ``fails`` (the hidden test cases a
wrong answer fails, a banded test's name standing for all its cases), ``fails_on`` (``{backend:
[cases]}``: cases that fail only under that Keras backend, where Keras itself behaves differently;
``expect:`` counts those of ``tensorflow``, the grading backend) and ``hints`` (``{case:
text}``: what the failure message of a case must say); for the calibration, ``power: true`` (a wrong
answer whose distribution the stochastic tests it fails are calibrated against: the mistakes the
bound is meant to reject, not answers that crash or return nothing).
"""
from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from pathlib import Path

import yaml

from gradkit_tools.course import Assignment
from gradkit_tools.master import solution_code, strip_solution_marks

__all__ = ["CatalogueError", "KINDS", "load_catalogue", "solution_answers", "answer_cells", "answer_sources",
           "build_submission",
           "submission_file", "write_submissions", "expected_scores"]

KINDS = ("correct", "wrong", "blank", "malformed", "tamper")
_ENTRY_KEYS = {"kind", "why", "answers", "blank", "extra_cells", "drop_checks", "raw", "zip", "expect",
               "status", "reason", "flags", "fails", "fails_on", "hints", "power"}
_ANSWER_KEYS = {"code", "replace", "append", "blank"}
_CHECK = re.compile(r"""grader\.check\(\s*["']([^"']+)["']\s*\)""")


class CatalogueError(ValueError):
    """A catalogue or a submission cannot be built; the message names the file, the entry and the key."""


def load_catalogue(path: str | Path) -> dict[str, dict]:
    """The entries of a catalogue file (``course/<name>/answers.yml``): ``{name: entry}`` (name order)."""
    path = Path(path)
    if not path.is_file():
        raise CatalogueError(f"no catalogue of answers: {path}")
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc.get("submissions"), dict):
        raise CatalogueError(f"{path}: needs a `submissions:` mapping")
    if doc.get("assignment") not in (None, path.parent.name):
        raise CatalogueError(f"{path}: assignment {doc.get('assignment')!r} but the folder is {path.parent.name!r}")
    out: dict[str, dict] = {}
    for name, entry in doc["submissions"].items():
        where = f"{path}: entry {name!r}"
        if not re.fullmatch(r"[A-Za-z0-9_.()-][A-Za-z0-9_.() -]*", str(name)):
            raise CatalogueError(f"{where}: use letters, digits, spaces and _ - . ( ) in entry names")
        entry = dict(entry or {})
        if unknown := set(entry) - _ENTRY_KEYS:
            raise CatalogueError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_ENTRY_KEYS)})")
        if entry.get("kind") not in KINDS:
            raise CatalogueError(f"{where}: kind must be one of {KINDS}, got {entry.get('kind')!r}")
        if entry.get("status", "graded") not in ("graded", "ungradable"):
            raise CatalogueError(f"{where}: status must be graded or ungradable")
        for q, edit in (entry.get("answers") or {}).items():
            if not isinstance(edit, dict) or not edit or set(edit) - _ANSWER_KEYS:
                raise CatalogueError(f"{where}: answers.{q} must be a mapping with keys from {sorted(_ANSWER_KEYS)}")
        out[str(name)] = entry
    return dict(sorted(out.items()))


def solution_answers(master: str | Path) -> dict[str, list[str]]:
    """``{question: [code of each solution code cell]}`` of a master as the solution reads
    (:func:`gradkit_tools.master.strip_solution_marks`)."""
    return {q: [strip_solution_marks(src) for src in cells] for q, cells in solution_code(master).items()}


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
        raise CatalogueError(f"{len(idx)} code answer cells in the student notebook but {len(owners)} solution "
                           "code cells in the master: release the assignment again (gradkit release)")
    out: dict[str, list[int]] = {}
    for q, i in zip(owners, idx):
        out.setdefault(q, []).append(i)
    return out


def _set_source(cell: dict, src: str) -> None:
    cell["source"] = src
    cell["outputs"], cell["execution_count"] = [], None


def submission_file(name: str, entry: dict) -> str:
    """File name of entry ``name``'s submission: ``<name>.zip`` for ``zip`` entries, else ``<name>.ipynb``."""
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


def build_submission(name: str, entry: dict, student: dict, solutions: dict[str, list[str]],
                  assignment: str = "submission") -> bytes:
    """The file bytes of submission ``name``: the student notebook with its answers filled in as
    ``entry`` says (inside a zip for ``zip`` entries)."""
    if "raw" in entry:
        return str(entry["raw"]).encode()
    text = _notebook_text(name, entry, student, solutions)
    if "zip" in entry:
        return _zip_bytes({f"{assignment}.ipynb": text, **{str(k): str(v) for k, v in entry["zip"].items()}})
    return text.encode()


def answer_sources(name: str, entry: dict, solutions: dict[str, list[str]]) -> dict[str, list[str] | None]:
    """``{question: [source of each answer cell]}`` of entry ``name``: the solution's cells with the
    entry's ``answers`` edits applied; ``None`` for a question left as handed out (``blank``)."""
    edits = entry.get("answers") or {}
    if unknown := set(edits) - set(solutions):
        raise CatalogueError(f"entry {name!r}: no answer cells for {sorted(unknown)} (questions: {sorted(solutions)})")
    out: dict[str, list[str] | None] = {}
    for q, sols in solutions.items():
        edit = edits.get(q, {})
        if entry.get("blank") and not set(edit) & {"code", "replace", "append"} or edit.get("blank"):
            out[q] = None  # as handed out
            continue
        srcs = list(sols)
        if "code" in edit:
            srcs = [str(edit["code"]).rstrip("\n")] + [""] * (len(srcs) - 1)
        for old, new in edit.get("replace", []):
            if not any(old in s for s in srcs):
                raise CatalogueError(f"entry {name!r}: answers.{q}.replace: {old!r} does not occur in the solution")
            srcs = [s.replace(old, new) for s in srcs]
        if "append" in edit:
            srcs[-1] = srcs[-1].rstrip("\n") + "\n" + str(edit["append"]).rstrip("\n")
        out[q] = srcs
    return out


def _notebook_text(name: str, entry: dict, student: dict, solutions: dict[str, list[str]]) -> str:
    nb = copy.deepcopy(student)
    cells = answer_cells(nb, solutions)
    for q, srcs in answer_sources(name, entry, solutions).items():
        for i, src in zip(cells[q], srcs or []):
            _set_source(nb["cells"][i], src.rstrip("\n"))
    if entry.get("drop_checks"):
        nb["cells"] = [c for c in nb["cells"]
                       if not (c["cell_type"] == "code" and _CHECK.search("".join(c["source"])))]
    for k, src in enumerate(entry.get("extra_cells") or []):
        nb["cells"].append({"cell_type": "code", "execution_count": None, "id": f"fixture-extra-{k}",
                            "metadata": {}, "outputs": [], "source": str(src).rstrip("\n")})
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_submissions(assignment: Assignment, *, assignments: str | Path = "assignments",
                      check: bool = False) -> list[Path]:
    """Write (or with ``check``, compare) every example submission of ``assignment``'s catalogue.

    Returns the submission files (``course/<name>/submissions/``). With ``check``, raises
    :class:`CatalogueError` listing the files that differ from a fresh build, are missing, or
    are stray (``.ipynb`` / ``.zip`` not in the catalogue).
    """
    name, folder = assignment.name, assignment.submissions_dir
    entries = load_catalogue(assignment.answers_file)
    student = json.loads((Path(assignments) / name / f"{name}.ipynb").read_text())
    sols = solution_answers(assignment.master)
    paths, stale = [], []
    if not check:
        folder.mkdir(exist_ok=True)
        (folder / "GENERATED.md").write_text(_BANNER.format(name=name))
    for fname, entry in entries.items():
        data, path = build_submission(fname, entry, student, sols, name), folder / submission_file(fname, entry)
        paths.append(path)
        if not check:
            path.write_bytes(data)
        elif not path.is_file() or path.read_bytes() != data:
            stale.append(f"{path} ({'missing' if not path.is_file() else 'differs from a fresh build'})")
    stray = sorted({*folder.glob("*.ipynb"), *folder.glob("*.zip")} - set(paths))
    if check and (stale or stray):
        raise CatalogueError("example submissions out of date (run `gradkit examples " + name + "`): "
                             + "; ".join([*stale, *(f"{p} (not in the catalogue)" for p in stray)]))
    for p in stray:
        p.unlink()
    return paths


_BANNER = """# Generated files: do not edit by hand

The example submissions of {name}, built by `gradkit examples {name}` from `../answers.yml`
(the catalogue of right and wrong answers) and the student release; `gradkit grade-examples {name}`
grades them against the scores the catalogue expects.
"""


def expected_scores(entry: dict, questions: dict[str, float]) -> dict[str, float]:
    """``{question: points}`` the submission must score, given the autograder's ``{question: points}``."""
    expect = entry.get("expect") or {}
    if unknown := set(expect) - set(questions):
        raise CatalogueError(f"expect names {sorted(unknown)}, not autograded questions {sorted(questions)}")
    base = 0.0 if entry.get("blank") or entry.get("status") == "ungradable" else 1.0
    return {q: float(expect.get(q, base * p)) for q, p in questions.items()}
