"""``gradkit validate``: grade the fixture submissions and compare with their manifests.

Every fixture of :mod:`gradkit.fixtures` is graded by :func:`gradkit.grade.grade` (the real
``otter run`` in a child process, as for students) with the released autograder; each row is
then compared with the manifest: grading status, points per question, and the ``reason`` and
``flags`` patterns. The table says, per fixture, the expected and actual score and the verdict.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from gradkit.fixtures import KINDS, FixtureError, expected_scores, fixture_file, load_fixtures, write_fixtures
from gradkit.grade import grade, load_manifest, resolve_autograder

__all__ = ["Verdict", "validate", "format_verdicts"]

_TOL = 1e-6  # points are sums of case points (multiples of 1/steps); compare up to float rounding


@dataclass
class Verdict:
    """One fixture's outcome: expected vs actual, and what differs (empty when it matches)."""

    assignment: str
    fixture: str
    kind: str
    expected: float
    actual: float
    possible: float
    status: str
    problems: list[str] = field(default_factory=list)

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


def validate(names: Sequence[str], *, fixtures: str | Path = "tests/fixtures/submissions",
             autograder: str | Path = "autograder", assignments: str | Path = "assignments",
             solutions: str | Path = "solutions", kinds: Iterable[str] | None = None,
             only: Iterable[str] | None = None, out: str | Path | None = None, jobs: int | None = None,
             timeout_s: float | None = None, config: str | Path | None = None, check_fixtures: bool = True,
             progress: bool = True) -> list[Verdict]:
    """Grade the fixtures of ``names`` and compare every row with its manifest entry.

    Parameters
    ----------
    names : sequence of str
        Assignments (folders ``<fixtures>/<name>/``).
    kinds : iterable of str, optional
        Grade only these kinds (see :data:`gradkit.fixtures.KINDS`); default all.
    only : iterable of str, optional
        Grade only fixtures with these names.
    out : path, optional
        Keep the grades in ``out/<name>/`` (default: a temporary folder, removed).
    check_fixtures : bool
        First check that the fixture notebooks match a fresh build of the manifests (from the
        student notebooks in ``assignments`` and the masters in ``solutions``).
    jobs, timeout_s, config, progress
        Passed to :func:`gradkit.grade.grade`.
    """
    kinds = set(kinds or KINDS)
    if bad := kinds - set(KINDS):
        raise FixtureError(f"unknown fixture kinds {sorted(bad)}; known: {', '.join(KINDS)}")
    only = set(only) if only else None
    tmp = None if out is not None else Path(tempfile.mkdtemp(prefix="gradkit-validate-"))
    root = Path(out) if out is not None else tmp
    verdicts: list[Verdict] = []
    try:
        for name in names:
            folder = Path(fixtures) / name
            if check_fixtures:
                write_fixtures(name, fixtures=fixtures, assignments=assignments, solutions=solutions, check=True)
            entries = {k: e for k, e in load_fixtures(folder).items()
                       if e["kind"] in kinds and (only is None or k in only)}
            if not entries:
                continue
            zip_path = resolve_autograder(Path(autograder) / name, config)
            questions = {q: float(p) for q, p in load_manifest(zip_path)["questions"].items()}
            rows = grade(zip_path, [folder / fixture_file(k, e) for k, e in entries.items()], root / name, jobs=jobs,
                         timeout_s=timeout_s, force=True, config=config, progress=progress)
            by_file = {r["file"]: r for r in rows}
            for fname, entry in entries.items():
                row = by_file[fixture_file(fname, entry)]
                want = sum(expected_scores(entry, questions).values())
                verdicts.append(Verdict(name, fname, entry["kind"], want, float(row["total_points_earned"]),
                                        sum(questions.values()), row["grading_status"],
                                        _compare(entry, row, questions)))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return verdicts


def format_verdicts(verdicts: list[Verdict]) -> str:
    """A plain-text table: assignment, fixture, kind, expected, actual, status, verdict."""
    head = ["assignment", "fixture", "kind", "expected", "actual", "status", "verdict"]
    body = [[v.assignment, v.fixture, v.kind, f"{v.expected:g}/{v.possible:g}", f"{v.actual:g}/{v.possible:g}",
             v.status, "ok" if v.ok else "MISMATCH: " + "; ".join(v.problems)] for v in verdicts]
    widths = [max(len(c) for c in col) for col in zip(head, *body)] if body else [len(h) for h in head]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    n_bad = sum(not v.ok for v in verdicts)
    summary = f"{len(verdicts) - n_bad}/{len(verdicts)} fixtures match" + (f", {n_bad} MISMATCH" if n_bad else "")
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body), summary])
