"""``final_grades.csv`` of ``gradkit grade`` and ``gradkit merge`` of shard CSVs.

The columns are ``otter grade``'s -- ``file``, one column per question
(sorted), ``total_points_earned``, ``percent_correct``, ``grading_status`` --
followed by ``reason``, ``flags`` and ``device``; the first data row is
otter's ``points-per-question`` row.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable

__all__ = ["CSV_NAME", "POINTS_ROW", "TAIL_COLUMNS", "GradeError", "write_csv", "merge"]

CSV_NAME = "final_grades.csv"
POINTS_ROW = "points-per-question"
TAIL_COLUMNS = ["total_points_earned", "percent_correct", "grading_status", "reason", "flags", "device"]


class GradeError(RuntimeError):
    """Bad input to ``gradkit grade`` or ``gradkit merge`` (the message names it); nothing was graded/written."""


def _fmt(x: float) -> str:
    return repr(float(x))


def write_csv(path: Path, rows: list[dict], questions: dict[str, float]) -> None:
    """Write ``rows`` (grade records) sorted by file, after otter's points-per-question row."""
    qs = sorted(questions)
    possible = sum(questions.values())
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", *qs, *TAIL_COLUMNS])
        w.writerow([POINTS_ROW, *(_fmt(questions[q]) for q in qs), _fmt(possible), "1.0", "--", "", "", ""])
        for r in sorted(rows, key=lambda r: r["file"]):
            w.writerow([r["file"], *(_fmt(r["scores"].get(q, 0.0)) for q in qs), _fmt(r["total_points_earned"]),
                        _fmt(r["percent_correct"]), r["grading_status"], r["reason"].replace("\n", " "),
                        "; ".join(r["flags"]), r["device"]])


def merge(csvs: Iterable[str | os.PathLike], out: str | os.PathLike = CSV_NAME) -> Path:
    """Combine shard CSVs written by :func:`gradkit_tools.grade.grade` into one ``final_grades.csv``.

    Raises
    ------
    GradeError
        The CSVs have different columns or points rows (different autograders),
        or two of them hold different rows for the same file.
    """
    header: list[str] | None = None
    points: list[str] | None = None
    rows: dict[str, list[str]] = {}
    for path in map(Path, csvs):
        with open(path, newline="") as fh:
            table = list(csv.reader(fh))
        if not table:
            raise GradeError(f"{path} is empty")
        if header is None:
            header = table[0]
        elif table[0] != header:
            raise GradeError(f"{path} has columns {table[0]}, expected {header} (graded with another autograder?)")
        for row in table[1:]:
            if row[0] == POINTS_ROW:
                if points is not None and row != points:
                    raise GradeError(f"{path}: points-per-question row {row} differs from {points}")
                points = row
            elif row[0] in rows and rows[row[0]] != row:
                raise GradeError(f"{path}: {row[0]} appears in two shards with different results")
            else:
                rows[row[0]] = row
    if header is None:
        raise GradeError("no CSV to merge")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        if points:
            w.writerow(points)
        w.writerows(rows[k] for k in sorted(rows))
    return out
