"""Grading time per submission: the harness (tests outside the kernel, kernel in its sandbox) vs otter's runner.

    .venv/bin/python benchmarks/bench_harness.py [--assignment a1_clipping,...] [--copies 3] [--quick]

For each assignment, in one run on this machine:

* baseline: ``otter run -a autograder/<a>/autograder.zip solution.ipynb`` (otter's own runner, as
  ``gradkit grade`` used it before the harness: notebook and hidden tests in one kernel, no sandbox);
* ``gradkit grade <a> <copies> --jobs 1``: the harness worker, the kernel in its bubblewrap sandbox,
  the hidden tests in the worker; per-submission wall time from gradkit's records (the first copy
  pays the worker's Keras import, the others reuse it), and the harness's phases.

Reports both, their ratio (target: at most 1.5) and the phases. Nothing asserts.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, env_backend_device, part_main, part_parser, pick_assignments  # noqa: E402
from bench_grade import grade_batch  # noqa: E402

ALL = ["a1_clipping", "a2_init", "a3_dying_relu", "a4_resnet"]
TARGET = 1.5


def otter_run(name: str) -> float:
    work = Path(tempfile.mkdtemp(prefix=f"bench-otter-{name}-"))
    try:
        nb = work / f"{name}.ipynb"
        (work / "out").mkdir()
        shutil.copy(ROOT / "autograder" / name / "solution.ipynb", nb)
        cmd = [sys.executable, "-m", "otter", "run", "-a", str(ROOT / "autograder" / name / "autograder.zip"),
               "-o", str(work / "out"), "--no-logo", str(nb)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"otter run exited {proc.returncode}: {(proc.stdout + proc.stderr)[-1500:]}")
        return wall
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args) -> dict:
    names = pick_assignments(args.assignment, ALL)
    copies = args.copies or (2 if args.quick else 3)
    backend, device = env_backend_device()
    columns = ["assignment", "otter run s (baseline)", "harness s, first copy", "harness s, later copies (mean)",
               "harness s, mean", "ratio (mean / baseline)", "phases of a later copy (kernel start, cells, tests)",
               "points"]
    rows, targets, extra = [], [], {}
    for name in names:
        base = otter_run(name)
        h = grade_batch(name, copies, jobs=1)
        h["seconds"] = h.pop("per_submission_s")
        later = h["seconds"][1:] or h["seconds"]
        mean = sum(h["seconds"]) / len(h["seconds"])
        ph = (h["phases"][-1] or {})
        rows.append([name, base, h["seconds"][0], sum(later) / len(later), mean, mean / base,
                     f"{ph.get('kernel_start', 0):.1f} / {ph.get('cells', 0):.1f} / {ph.get('tests', 0):.1f}",
                     ", ".join(f"{p:g}" for p in h["points"])])
        targets.append({"what": f"{name}: harness time per submission vs otter's runner", "target": f"<= {TARGET}x",
                        "measured": f"{mean / base:.2f}x", "met": mean / base <= TARGET,
                        "note": "issue: per-submission grading time with sandbox and harness at most 1.5x today's"})
        extra[name] = {"otter_run_s": base, **h}
    notes = [f"{copies} copies of autograder/<a>/solution.ipynb, gradkit grade --jobs 1 (one harness worker); "
             "baseline: one otter run of the same notebook (hidden tests in the kernel, no sandbox)."]
    return {"part": "harness", "title": "grading time per submission: harness vs otter's runner",
            "backend": backend, "device": device, "columns": columns, "rows": rows, "notes": notes,
            "targets": targets, "extra": extra}


def parser():
    ap = part_parser(__doc__)
    ap.add_argument("--assignment", help="comma-separated assignments (default: all four)")
    ap.add_argument("--copies", type=int, help="copies of the solution per assignment (default 3; --quick 2)")
    return ap


if __name__ == "__main__":
    part_main(run, parser())
