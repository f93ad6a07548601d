"""``gradkit grade-examples``: grade the example submissions and compare with their catalogue.

Every example submission of :mod:`gradkit_tools.examples` is graded by :func:`gradkit_tools.grade.grade`
(the autograder's harness, each kernel in its sandbox, as for students) with the released autograder; each row
is then compared with its catalogue entry: grading status, points per question, and the ``reason``
and ``flags`` patterns. The table says, per submission, the expected and actual score and the verdict.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from gradkit_tools.course import assignments as course_assignments
from gradkit_tools.examples import (
    KINDS,
    CatalogueError,
    expected_scores,
    load_catalogue,
    submission_file,
    write_submissions,
)
from gradkit_tools.grade import grade, load_manifest, resolve_autograder

__all__ = ["Verdict", "grade_examples", "format_verdicts", "format_adversarial"]

_TOL = 1e-6  # points are sums of case points (multiples of 1/steps); compare up to float rounding


@dataclass
class Verdict:
    """One example submission's outcome: expected vs actual, and what differs (empty when it matches)."""

    assignment: str
    example: str
    kind: str
    expected: float
    actual: float
    possible: float
    status: str
    problems: list[str] = field(default_factory=list)
    why: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def _compare(entry: dict, row: dict, questions: dict[str, float]) -> list[str]:
    problems = []
    want_status = entry.get("status", "graded")
    if row["grading_status"] != want_status:
        problems.append(f"status {row['grading_status']} != {want_status} ({row.get('reason') or 'no reason'})")
    for q, want in expected_scores(entry, questions).items():
        got = float(row["scores"].get(q, 0.0))
        if abs(got - want) > _TOL:
            problems.append(f"{q} {got:g} != {want:g}")
    reason, flags = row.get("reason") or "", ";".join(row.get("flags") or [])
    if entry.get("reason") and not re.search(entry["reason"], reason):
        problems.append(f"reason {reason!r} does not match /{entry['reason']}/")
    if entry.get("flags") and not re.search(entry["flags"], flags):
        problems.append(f"flags {flags!r} do not match /{entry['flags']}/")
    if not entry.get("flags") and flags:
        problems.append(f"unexpected flags {flags!r}")
    return problems


def grade_examples(names: Sequence[str], *, course: str | Path | None = None,
                   autograder: str | Path = "autograder", assignments: str | Path = "assignments",
                   kinds: Iterable[str] | None = None, only: Iterable[str] | None = None,
                   out: str | Path | None = None, jobs: int | None = None, timeout_s: float | None = None,
                   check_submissions: bool = True, progress: bool = True) -> list[Verdict]:
    """Grade the example submissions of ``names`` and compare every row with its catalogue entry.

    Parameters
    ----------
    names : sequence of str
        Assignments of the course.
    course : path, optional
        Course folder (default :func:`gradkit_tools.course.find_course`).
    kinds : iterable of str, optional
        Grade only these kinds (see :data:`gradkit_tools.examples.KINDS`); default all.
    only : iterable of str, optional
        Grade only entries with these names.
    out : path, optional
        Keep the grades in ``out/<name>/`` (default: a temporary folder, removed).
    check_submissions : bool
        First check that the submission files match a fresh build of the catalogue (from the
        student notebooks in ``assignments`` and the masters).
    jobs, timeout_s, progress
        Passed to :func:`gradkit_tools.grade.grade`.
    """
    kinds = set(kinds or KINDS)
    if bad := kinds - set(KINDS):
        raise CatalogueError(f"unknown kinds {sorted(bad)}; known: {', '.join(KINDS)}")
    only = set(only) if only else None
    tmp = None if out is not None else Path(tempfile.mkdtemp(prefix="gradkit-examples-"))
    root = Path(out) if out is not None else tmp
    verdicts: list[Verdict] = []
    try:
        for a in course_assignments(course, names):
            if check_submissions:
                write_submissions(a, assignments=assignments, check=True)
            entries = {k: e for k, e in load_catalogue(a.answers_file).items()
                       if e["kind"] in kinds and (only is None or k in only)}
            if not entries:
                continue
            zip_path = resolve_autograder(Path(autograder) / a.name, course)
            questions = {q: float(p) for q, p in load_manifest(zip_path)["questions"].items()}
            files = [a.submissions_dir / submission_file(k, e) for k, e in entries.items()]
            rows = grade(zip_path, files, root / a.name, jobs=jobs, timeout_s=timeout_s, force=True, course=course,
                         progress=progress)
            by_file = {r["file"]: r for r in rows}
            for fname, entry in entries.items():
                row = by_file[submission_file(fname, entry)]
                want = sum(expected_scores(entry, questions).values())
                verdicts.append(Verdict(a.name, fname, entry["kind"], want, float(row["total_points_earned"]),
                                        sum(questions.values()), row["grading_status"],
                                        _compare(entry, row, questions), " ".join(str(entry.get("why", "")).split()),
                                        row.get("reason") or ""))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return verdicts


def format_verdicts(verdicts: list[Verdict]) -> str:
    """A plain-text table: assignment, example, kind, expected, actual, status, verdict."""
    head = ["assignment", "example", "kind", "expected", "actual", "status", "verdict"]
    body = [[v.assignment, v.example, v.kind, f"{v.expected:g}/{v.possible:g}", f"{v.actual:g}/{v.possible:g}",
             v.status, "ok" if v.ok else "MISMATCH: " + "; ".join(v.problems)] for v in verdicts]
    widths = [max(len(c) for c in col) for col in zip(head, *body)] if body else [len(h) for h in head]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    n_bad = sum(not v.ok for v in verdicts)
    summary = f"{len(verdicts) - n_bad}/{len(verdicts)} examples match" + (f", {n_bad} MISMATCH" if n_bad else "")
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body), summary])


def format_adversarial(verdicts: list[Verdict]) -> str:
    """The adversarial table (Markdown): attack, expected, actual, status, reason, verdict."""
    rows = ["| assignment | attack | expected | actual | status | reason | verdict |", "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        cells = [v.assignment, f"`{v.example}`: {v.why}", f"{v.expected:g}/{v.possible:g}",
                 f"{v.actual:g}/{v.possible:g}", v.status, v.reason or "-",
                 "ok" if v.ok else "MISMATCH: " + "; ".join(v.problems)]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    n_bad = sum(not v.ok for v in verdicts)
    return "\n".join(rows + ["", f"{len(verdicts) - n_bad}/{len(verdicts)} attacks score as their catalogue says"
                              + (f", {n_bad} MISMATCH" if n_bad else "")])
