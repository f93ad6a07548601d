"""Calibration runs: seed by seed vs many seeds side by side, every check of every assignment, in one run.

    .venv/bin/python benchmarks/bench_calibration.py [--runs 50] [--sample 3] [--only NAME] [--quick]

For every check of every assignment (:class:`gradkit_grader.statistic.Check`), with the reference components:

* Naive baseline (how calibration ran before): the statistic seed by seed
  (``run_check(..., batch_runs=1)``) on the first ``--sample`` seeds, timed and extrapolated linearly.
* Batched, for a check with a ``batched`` statistic: ``run_check(..., batch_runs=--runs)`` on ``--runs``
  seeds, one chunk (the runs of every seed trained side by side), timed end to end. Its values on the
  sample seeds are compared with the baseline's (``equal``: bit for bit). A check without one runs seed
  by seed in both columns (measured once).

The ratio is per-seed seconds per run / batched seconds per run, both from this run. The projection of a
full calibration (``gradkit calibrate``: 300 reference runs plus the power runs stored in
course/<name>/calibration.json, one process) multiplies each check's seconds per run by its runs (power
runs at the reference's cost per run). The seeds are those of the stored calibration. ``--quick`` shrinks
the trainings of the assignments listed in :data:`QUICK` (and skips the others): its figures are not a
calibration's and the targets are not judged. Nothing asserts.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, backend_device, part_main, part_parser  # noqa: E402

#: target on 2 CPU cores, full tolerances, --runs 50: each assignment's full calibration, one process
TARGET_MINUTES = 5.0
#: ``--quick``: the assignments run and the tolerances that shrink their trainings
QUICK = {"a2_init": {"circles_epochs": 2, "gap_epochs": 2}}


def _stored(name: str) -> dict:
    return json.loads((ROOT / "course" / name / "calibration.json").read_text())


def _power_runs(entry: dict) -> int:
    return sum(p.get("runs", 0) for p in (entry.get("power") or {}).values())


def measure(name: str, check, tol: dict, seeds: list[int], sample: int) -> dict:
    """Per-seed on ``seeds[:sample]``; batched on ``seeds`` (one chunk) when the check has a batched form."""
    from gradkit_tools.calibrate import run_check

    t0 = time.perf_counter()
    alone = run_check(check, tol, seeds[:sample], batch_runs=1)
    per_seed = (time.perf_counter() - t0) / sample
    batched, equal = per_seed, None
    if check.batched is not None:
        t0 = time.perf_counter()
        together = run_check(check, tol, seeds, batch_runs=len(seeds))
        batched = (time.perf_counter() - t0) / len(seeds)
        equal = alone.tolist() == together[:sample].tolist()
    return {"assignment": name, "test": check.test, "name": check.name, "sample": sample,
            "runs": len(seeds) if check.batched is not None else sample, "per_seed_s": per_seed,
            "batched_s": batched, "ratio": per_seed / batched, "equal": equal}


def project(name: str, measured: list[dict]) -> dict:
    """Full calibration of ``name`` in one process, in seconds, before and after (the module docstring)."""
    doc, before, after = _stored(name), 0.0, 0.0
    for m in (m for m in measured if m["assignment"] == name):
        entry = doc["checks"][f"{m['test']}:{m['name']}"]
        runs = doc["runs"] + _power_runs(entry)
        before, after = before + runs * m["per_seed_s"], after + runs * m["batched_s"]
    return {"assignment": name, "before_s": before, "after_s": after}


def run(args) -> dict:
    from gradkit_tools.calibrate import checks_of, run_check, spread_seeds
    from gradkit_tools.course import tolerances

    runs = args.runs or (4 if args.quick else 50)
    sample = min(runs, args.sample or (1 if args.quick else 3))
    backend, device = backend_device()
    names = sorted(p.parent.name for p in (ROOT / "course").glob("*/calibration.json"))
    names = [n for n in names if (not args.only or n in args.only) and (not args.quick or n in QUICK)]
    measured = []
    for name in names:
        tol = {**tolerances(name), **(QUICK.get(name, {}) if args.quick else {})}
        doc = _stored(name)
        seeds = spread_seeds(doc["runs"], doc["first_seed"])[:runs]
        for check in checks_of(name):
            run_check(check, tol, seeds[-1:], batch_runs=1)  # warm-up: the backend's one-time start-up
            measured.append(measure(name, check, tol, seeds, sample))
    projections = [project(name, measured) for name in names]
    columns = ["check", "per-seed s/run", "batched s/run", "ratio", "equal", "sample", "runs"]
    rows = [[f"{m['assignment']} {m['test']}", m["per_seed_s"], m["batched_s"], m["ratio"],
             "-" if m["equal"] is None else m["equal"], m["sample"], m["runs"]] for m in measured]
    rows += [[f"{p['assignment']} full calibration, min (before -> after)", p["before_s"] / 60, p["after_s"] / 60,
              p["before_s"] / p["after_s"], None, None, None] for p in projections]
    full = not args.quick and runs >= 50
    notes = [f"per-seed timed on the first {sample} seed(s) and extrapolated; batched: {runs} seeds in one chunk; "
             "equal = the batched values of the sample seeds are the per-seed ones, bit for bit ('-': no batched "
             "form, the check runs seed by seed in both columns)",
             "projection: 300 reference runs + the stored power runs per check, one process, at the measured "
             "seconds per run"]
    if args.quick:
        notes.append(f"--quick: trainings shrunk ({', '.join(QUICK)} only): not a calibration's figures; "
                     "targets not judged")
    why = None if full else "target is for full tolerances, 50 runs"
    targets = [{"what": f"{p['assignment']} full calibration, one process", "target": f"<= {TARGET_MINUTES:.0f} min",
                "measured": f"{p['after_s'] / 60:.1f} min",
                "met": p["after_s"] / 60 <= TARGET_MINUTES if full else None, "note": why} for p in projections]
    return {"part": "calibration", "title": "Calibration: batched statistics vs seed by seed",
            "backend": backend, "device": device, "columns": columns, "rows": rows, "notes": notes,
            "targets": targets, "extra": {"checks": measured, "projections": projections, "runs": runs,
                                          "sample": sample, "quick": bool(args.quick)}}


def parser():
    ap = part_parser(__doc__)
    ap.add_argument("--runs", type=int, help="seeds trained side by side per batched check (default 50; --quick 4)")
    ap.add_argument("--sample", type=int, help="seeds timed one by one for the baseline (default 3; --quick 1)")
    ap.add_argument("--only", action="append", metavar="NAME", help="this assignment only (repeatable)")
    return ap


if __name__ == "__main__":
    part_main(run, parser())
