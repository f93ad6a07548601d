"""``gradkit grade`` throughput: N copies of one submission with --jobs 1, then --jobs 2.

    .venv/bin/python benchmarks/bench_grade.py [--assignment a1_clipping] [--copies 4] [--jobs 1,2] [--quick]

The CLI exactly as an instructor types it (``gradkit grade <a> <folder> -o <out> --jobs J --force``,
in a child process: start-up, the release-manifest check, the device probe and one real
grading per submission are all counted) on ``--copies`` copies of the release's solution
notebook ``autograder/<a>/solution.ipynb``. Reports the batch wall time, the mean time per
submission from gradkit's records, submissions per hour, and the speed-up of each --jobs
over --jobs 1 measured in this run; and what 300 submissions would take at that rate.
Nothing asserts.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, children_cpu, env_backend_device, part_main, part_parser, pick_assignments  # noqa: E402

DEFAULT = "a1_clipping"
COURSE = 300  # students (target: grade 300 students overnight)


def grade_batch(name: str, copies: int, jobs: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"bench-grade-{name}-"))
    try:
        subs = work / "submissions"
        subs.mkdir()
        for i in range(copies):
            shutil.copy(ROOT / "autograder" / name / "solution.ipynb", subs / f"student{i:03d}.ipynb")
        cmd = [sys.executable, "-c", "import sys; from gradkit_tools.cli import main; sys.exit(main())",
               "grade", name, str(subs), "-o", str(work / "out"), "--jobs", str(jobs), "--force", "--quiet"]
        c0, t0 = children_cpu(), time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t0, children_cpu() - c0
        recs = [json.loads(p.read_text())["gradkit"] for p in sorted((work / "out" / "results").glob("*.json"))]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"gradkit grade exited {proc.returncode}: {(proc.stdout + proc.stderr)[-2000:]}")
    return {"jobs": jobs, "copies": copies, "wall_s": wall, "cpu_s": cpu,
            "per_submission_s": [float(r["seconds"]) for r in recs], "phases": [r.get("phases") for r in recs],
            "graded": sum(r["grading_status"] == "graded" for r in recs),
            "points": [r["total_points_earned"] for r in recs],
            "device": recs[0].get("device", "") if recs else ""}


def run(args) -> dict:
    (name,) = pick_assignments(args.assignment, [DEFAULT])
    copies = args.copies or (2 if args.quick else 4)
    jobs_list = [int(j) for j in args.jobs.split(",")]
    backend, device = env_backend_device()
    batches = [grade_batch(name, copies, j) for j in jobs_list]
    base = batches[0]
    columns = ["jobs", "copies", "batch wall s", "children cpu s", "mean s / submission", "submissions / hour",
               f"speed-up vs --jobs {base['jobs']}", f"{COURSE} submissions, hours", "graded"]
    rows = []
    for b in batches:
        per_hour = 3600 * b["copies"] / b["wall_s"]
        rows.append([b["jobs"], b["copies"], b["wall_s"], b["cpu_s"],
                     sum(b["per_submission_s"]) / len(b["per_submission_s"]), per_hour,
                     base["wall_s"] / b["wall_s"], COURSE / per_hour,
                     f"{b['graded']}/{b['copies']} ({', '.join(f'{p:g}' for p in sorted(set(b['points'])))} pts)"])
    best = min(batches, key=lambda b: b["wall_s"])
    notes = [f"assignment {name}: copies of autograder/{name}/solution.ipynb; device reported by gradkit: "
             f"{base['device'] or '?'}",
             "batch wall s includes the CLI start-up, the manifest check and the device probe (once per batch); "
             "mean s / submission is gradkit's own per-submission wall time (the harness, one kernel per submission)."]
    targets = [{"what": f"{COURSE} submissions of {name} overnight (12 h)", "target": "<= 12 h",
                "measured": f"{COURSE * best['wall_s'] / best['copies'] / 3600:.1f} h at --jobs {best['jobs']}",
                "met": COURSE * best["wall_s"] / best["copies"] / 3600 <= 12.0,
                "note": "derived target: 300 students overnight; none set for this table"}]
    return {"part": "grade", "title": f"gradkit grade throughput ({name}, {copies} copies)",
            "backend": backend, "device": device, "columns": columns, "rows": rows, "notes": notes,
            "targets": targets, "extra": {"batches": batches, "assignment": name}}


def parser():
    ap = part_parser(__doc__)
    ap.add_argument("--assignment", help=f"the assignment graded (default {DEFAULT})")
    ap.add_argument("--copies", type=int, help="copies of the solution notebook (default 4; --quick 2)")
    ap.add_argument("--jobs", default="1,2", help="--jobs values, comma-separated, the first is the baseline")
    return ap


if __name__ == "__main__":
    part_main(run, parser())
