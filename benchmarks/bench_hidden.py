"""Hidden-test time per question and per assignment, and the graded total per submission.

    .venv/bin/python benchmarks/bench_hidden.py [--assignments a1_clipping,a2_init] [--no-otter] [--quick]

* In process: every test cell of the master ``course/<a>/<a>.ipynb`` (whatever its tests are
  called) is run against the master's solutions, with ``tests/_masters.py`` (``master_parts``,
  ``compiled_tests``, ``namespace``, ``setup_source``, ``run_test``): the namespace is the
  master's set-up cell (the first cell outside the questions that imports keras) followed by
  every question's solution code; each test is timed, and the times are summed per question
  (hidden and public separately) and per assignment. ``gradkit_grader.bands.clear_memo()`` runs before
  each assignment, so statistics shared by the tests of one band are computed once per
  assignment, as in a graded run (the first test that needs one is charged for it).
* Per submission: ``gradkit_tools.grade.grade`` of ``autograder/<a>/solution.ipynb`` with the
  release's ``autograder.zip`` (the harness and the kernel: kernel start, the notebook's
  graded cells, every test), wall time from its record.

Targets (2 CPU cores): <= 60 s per assignment. Nothing asserts.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, assignments, backend_device, children_cpu, part_main, part_parser, pick_assignments  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")
TARGET_S = 60.0
#: --quick: the assignment whose tests are cheapest (measured), in-process only
QUICK = ["a1_clipping"]


def _masters():
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    import _masters

    return _masters


def _strip_magics(src: str) -> str:
    """IPython line magics and shell escapes (``%matplotlib inline``) are not Python."""
    return "\n".join("" if re.match(r"^\s*[%!]", ln) else ln for ln in src.splitlines()) + "\n"


def in_process(name: str) -> dict:
    """Time every test of the master of ``name`` against its solutions."""
    from gradkit_grader import bands

    M = _masters()
    master = M.master_path(name)
    configs, solutions, tests = M.master_parts(master)
    tests = M.compiled_tests(tests)
    setup = M.setup_source(master, marker="import keras") or ""
    bands.clear_memo()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the set-up cell's banner
        ns = M.namespace(_strip_magics(setup), *(solutions[q] for q in configs if q in solutions))
    ns_s = time.perf_counter() - t0
    results = []
    for test, (question, hidden, points, fn) in tests.items():
        t, c = time.perf_counter(), time.process_time()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the tests' own prints (seed notes)
                msg = M.run_test(fn, ns)
            outcome = "pass" if msg is None else "fail"
        except Exception as exc:  # noqa: BLE001 - an error is a result here, not a crash
            msg, outcome = f"{type(exc).__name__}: {exc}", "error"
        results.append({"test": test, "question": question, "hidden": hidden, "points": points,
                        "seconds": time.perf_counter() - t, "cpu_s": time.process_time() - c, "outcome": outcome,
                        "message": (msg or "")[:300]})
    bands.clear_memo()
    return {"assignment": name, "namespace_s": ns_s, "tests": results}


def per_submission(name: str) -> dict:
    """``gradkit grade`` of the release's solution notebook, timed by gradkit."""
    from gradkit_tools.grade import grade

    zip_path = ROOT / "autograder" / name / "autograder.zip"
    work = Path(tempfile.mkdtemp(prefix=f"bench-hidden-{name}-"))
    try:
        sub = work / "submissions" / f"{name}_solution.ipynb"
        sub.parent.mkdir()
        shutil.copy(ROOT / "autograder" / name / "solution.ipynb", sub)
        t0, c0 = time.perf_counter(), children_cpu()
        (rec,) = grade(zip_path, [sub], work / "out", jobs=1, force=True, progress=False)
        wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"seconds": float(rec["seconds"]), "wall_s": wall, "cpu_s": cpu, "status": rec["grading_status"],
            "points": rec["total_points_earned"], "percent": rec["percent_correct"],
            "reason": rec.get("reason", "")}


def run(args) -> dict:
    names = pick_assignments(args.assignments, QUICK if args.quick else assignments())
    otter = not (args.no_otter or args.quick)
    backend, device = backend_device()
    os.chdir(ROOT)  # tolerances() and gradkit grade find the course (course/grading.yml) from here
    columns = ["assignment", "question", "hidden tests", "hidden s", "hidden cpu s", "public s",
               "slowest hidden test (s)", "passed", "per submission s", "submission cpu s"]
    rows, targets, detail, problems = [], [], [], []
    for name in names:
        r = in_process(name)
        try:
            sub = per_submission(name) if otter else None
        except Exception as exc:  # noqa: BLE001 - e.g. a release being regenerated: report, go on
            sub = {"seconds": float("nan"), "cpu_s": float("nan"), "status": f"error: {type(exc).__name__}",
                   "points": 0.0, "reason": str(exc)[:500]}
            problems.append(f"{name}: per-submission grading failed: {type(exc).__name__}: {str(exc)[:300]}")
        detail.append({**r, "submission": sub})
        by_q: dict[str, list] = {}
        for t in r["tests"]:
            by_q.setdefault(t["question"], []).append(t)
        for q, ts in by_q.items():
            hid = [t for t in ts if t["hidden"]]
            slow = max(hid, key=lambda t: t["seconds"]) if hid else None
            rows.append([name, q, len(hid), sum(t["seconds"] for t in hid), sum(t["cpu_s"] for t in hid),
                         sum(t["seconds"] for t in ts if not t["hidden"]),
                         f"{slow['test']} ({slow['seconds']:.1f})" if slow else "-",
                         f"{sum(t['outcome'] == 'pass' for t in ts)}/{len(ts)}", None, None])
        hidden_s = sum(t["seconds"] for t in r["tests"] if t["hidden"])
        all_s = sum(t["seconds"] for t in r["tests"])
        n_pass = sum(t["outcome"] == "pass" for t in r["tests"])
        rows.append([name, "TOTAL", sum(t["hidden"] for t in r["tests"]), hidden_s,
                     sum(t["cpu_s"] for t in r["tests"] if t["hidden"]), all_s - hidden_s,
                     f"(solutions + set-up cell: {r['namespace_s']:.1f})",
                     f"{n_pass}/{len(r['tests'])}",
                     None if sub is None else (sub["seconds"] if sub["status"] == "graded" else sub["status"]),
                     None if sub is None else sub["cpu_s"]])
        problems += [f"{name}: {t['test']} {t['outcome']}: {t['message']}" for t in r["tests"]
                     if t["outcome"] != "pass"]
        targets.append({"what": f"{name} hidden tests, in process", "target": f"<= {TARGET_S:.0f} s",
                        "measured": f"{hidden_s:.1f} s", "met": hidden_s <= TARGET_S})
        if sub is not None:
            targets.append({"what": f"{name} per submission (graded end to end)", "target": f"<= {TARGET_S:.0f} s",
                            "measured": f"{sub['seconds']:.1f} s ({sub['status']}, {sub['points']:g} points)",
                            "met": sub["seconds"] <= TARGET_S and sub["status"] == "graded"})
    notes = ["cpu s: CPU seconds (all threads; children for the otter run), a check on wall times taken "
             "on a loaded machine; "
             "hidden s / public s: the question's tests run in this process against the master's solutions "
             "(memoised band statistics are charged to the first test that needs them); "
             "per submission s: gradkit grade of autograder/<a>/solution.ipynb (harness and kernel: kernel "
             "start, the notebook's graded cells, public and hidden tests)."]
    if not otter:
        notes.append("per submission: not run (--quick or --no-otter)")
    notes += [f"NOT PASSING: {p}" for p in problems]
    return {"part": "hidden", "title": "Hidden tests per question and assignment; total per submission",
            "backend": backend, "device": device, "columns": columns, "rows": rows, "notes": notes,
            "targets": targets, "extra": {"assignments": detail}}


def parser():
    ap = part_parser(__doc__)
    ap.add_argument("--assignments", help=f"comma-separated (default: all; --quick: {','.join(QUICK)})")
    ap.add_argument("--no-otter", action="store_true", help="skip the per-submission otter run")
    return ap


if __name__ == "__main__":
    part_main(run, parser())
