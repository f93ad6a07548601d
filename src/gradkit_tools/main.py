"""The kit's main job: release every assignment, grade the example submissions, print the table.

``python3 dev.py run`` (README) calls :func:`run_main` through ``gradkit main``.
Per assignment the examples are

* ``solution``: otter's solution notebook written by ``gradkit release``
  (``autograder/<name>/solution.ipynb``) -- must score full marks;
* ``blank``: the student release as handed out (``assignments/<name>/<name>.ipynb``)
  -- must score zero on every hidden test;
* every ``.ipynb`` / ``.zip`` under ``examples/<name>/``, if that folder exists.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from gradkit_tools.course import assignments as course_assignments
from gradkit_tools.grade import grade
from gradkit_tools.release import SOLUTION_FILE, release
from gradkit_tools.report import build_report

__all__ = ["collect_examples", "format_table", "run_main"]


def collect_examples(name: str, assignments: Path, autograder: Path, examples: Path, stage: Path) -> list[Path]:
    """Copy the examples of ``name`` into ``stage/<name>/`` under readable file names."""
    folder = stage / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    picks = {"solution.ipynb": autograder / name / SOLUTION_FILE,
             "blank.ipynb": assignments / name / f"{name}.ipynb"}
    extra = examples / name
    if extra.is_dir():
        picks.update({p.name: p for p in sorted(extra.iterdir()) if p.suffix in (".ipynb", ".zip")})
    out = []
    for label, src in picks.items():
        if src.is_file():
            shutil.copyfile(src, folder / label)
            out.append(folder / label)
    return out


def format_table(name: str, rows: list[dict]) -> str:
    """A plain-text grade table: one row per submission, one column per question."""
    qs = sorted({q for r in rows for q in r["scores"]})
    head = ["submission", *qs, "total", "%", "status", "reason"]
    body = [[r["file"], *(f"{r['scores'].get(q, 0.0):g}" for q in qs), f"{r['total_points_earned']:g}",
             f"{100 * r['percent_correct']:.0f}", r["grading_status"], (r["reason"] or "")[:60]]
            for r in sorted(rows, key=lambda r: r["file"])]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([f"== {name}", line(head), line(["-" * w for w in widths]), *map(line, body)])


def run_main(course: str | Path | None = None, assignments: str | Path = "assignments",
             autograder: str | Path = "autograder", examples: str | Path = "examples",
             out: str | Path = "out", *, jobs: int | None = None, release_first: bool = True,
             progress: bool = True, sandbox_mode: str = "bwrap") -> dict[str, list[dict]]:
    """Release (unless ``release_first`` is false), then grade each assignment's examples
    (in sandboxes unless ``sandbox_mode`` is ``"none"``).

    Grades land in ``out/<name>/final_grades.csv`` (see :func:`gradkit_tools.grade.grade`), the
    class report in ``out/<name>/report.html`` (:mod:`gradkit_tools.report`); the tables are
    printed and the rows returned by assignment name.
    """
    assignments, autograder = Path(assignments), Path(autograder)
    out = Path(out)
    if release_first:
        for r in release(course, assignments, autograder):
            print(f"released {r.name}: {sum(r.questions.values()):g} points ({r.seconds:.0f} s)", flush=True)
    tables = {}
    for name in (a.name for a in course_assignments(course)):
        subs = collect_examples(name, assignments, autograder, Path(examples), out / "submissions")
        rows = grade(autograder / name / "autograder.zip", subs, out / name, jobs=jobs, force=True,
                     course=course, progress=progress, sandbox_mode=sandbox_mode)
        tables[name] = rows
        print(format_table(name, rows), flush=True)
        report = build_report([out / name], out / name / "report.html", release=assignments)
        print(f"class report: {out / name / 'report.html'} ({len(report['review']['flagged_or_ungradable'])} to "
              "review)", flush=True)
    return tables
