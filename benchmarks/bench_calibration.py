"""Calibration runs of the batched statistics: seed by seed vs many seeds side by side, in one run.

    .venv/bin/python benchmarks/bench_calibration.py [--runs 50] [--sample 3] [--epochs E] [--quick]

Every check with a ``batched`` statistic (:class:`gradkit_grader.statistic.Check`; a2's circles
accuracy and depth gap) runs with the reference components:

* Naive baseline (how calibration ran before): the statistic seed by seed
  (``run_check(..., batch_runs=1)``) on the first ``--sample`` seeds, timed and extrapolated linearly.
* Batched: ``run_check(..., batch_runs=--runs)`` on ``--runs`` seeds, one chunk (one model per depth
  holding every seed's nets), timed end to end. Its values on the sample seeds are compared with the
  baseline's (``equal``: bit for bit).

The ratio is per-seed seconds per run / batched seconds per run, both from this run. The projection
of a full calibration (``gradkit calibrate``: 300 reference runs plus ``power_runs`` per wrong answer,
one process) per assignment takes the measured seconds per run for the batched checks and the stored
``seconds`` of course/<name>/calibration.json for every other check (its power runs at the same cost
per run). The seeds are those of the stored calibration. ``--epochs`` (and ``--quick``) shrink the
trainings: the figures are then not those of a calibration and the targets are not judged. Nothing
asserts.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, backend_device, part_main, part_parser  # noqa: E402

#: targets on 2 CPU cores, full tolerances, --runs 50
TARGET_RATIO, TARGET_A2_MINUTES = 4.0, 20.0


def _stored(name: str) -> dict:
    return json.loads((ROOT / "course" / name / "calibration.json").read_text())


def _power_runs(entry: dict) -> int:
    return sum(p.get("runs", 0) for p in (entry.get("power") or {}).values())


def measure(name: str, check, tol: dict, seeds: list[int], sample: int) -> dict:
    """Per-seed on ``seeds[:sample]``, batched on ``seeds`` (one chunk): seconds and values."""
    from gradkit_tools.calibrate import run_check

    t0 = time.perf_counter()
    alone = run_check(check, tol, seeds[:sample], batch_runs=1)
    t1 = time.perf_counter()
    together = run_check(check, tol, seeds, batch_runs=len(seeds))
    t2 = time.perf_counter()
    per_seed, batched = (t1 - t0) / sample, (t2 - t1) / len(seeds)
    return {"assignment": name, "test": check.test, "name": check.name, "sample": sample, "runs": len(seeds),
            "per_seed_s": per_seed, "batched_s": batched, "ratio": per_seed / batched,
            "equal": alone.tolist() == together[:sample].tolist()}


def project(name: str, measured: list[dict]) -> dict:
    """Full calibration of ``name`` in one process, in seconds, before and after (see the module docstring)."""
    doc, before, after = _stored(name), 0.0, 0.0
    fast = {m["test"]: m for m in measured if m["assignment"] == name}
    for key, entry in doc["checks"].items():
        test, runs = key.split(":", 1)[0], doc["runs"] + _power_runs(entry)
        if test in fast:
            before += runs * fast[test]["per_seed_s"]
            after += runs * fast[test]["batched_s"]
        else:
            stored = entry["seconds"] * runs / doc["runs"]
            before, after = before + stored, after + stored
    return {"assignment": name, "before_s": before, "after_s": after}


def warm_up(check, tol: dict) -> None:
    """One tiny training so that neither side pays the backend's one-time start-up."""
    check.statistic(check.reference(tol), {**tol, "circles_epochs": 1, "gap_epochs": 1}, 0)


def run(args) -> dict:
    from gradkit_tools.calibrate import checks_of, spread_seeds
    from gradkit_tools.course import tolerances

    runs = args.runs or (4 if args.quick else 50)
    sample = min(runs, args.sample or (1 if args.quick else 3))
    epochs = args.epochs or (2 if args.quick else None)
    backend, device = backend_device()
    names = sorted(p.parent.name for p in (ROOT / "course").glob("*/statistics.py"))
    measured = []
    for name in names:
        checks = [c for c in checks_of(name) if c.batched is not None]
        if not checks:
            continue
        tol = dict(tolerances(name))
        if epochs:
            tol.update(circles_epochs=epochs, gap_epochs=epochs)
        doc = _stored(name)
        seeds = spread_seeds(doc["runs"], doc["first_seed"])[:runs]
        warm_up(checks[0], tol)
        measured += [measure(name, c, tol, seeds, sample) for c in checks]
    projections = [project(name, measured) for name in names if (ROOT / "course" / name / "calibration.json").is_file()]
    columns = ["check", "per-seed s/run", "batched s/run", "ratio", "equal", "sample", "runs"]
    rows = [[f"{m['assignment']} {m['test']}", m["per_seed_s"], m["batched_s"], m["ratio"], m["equal"],
             m["sample"], m["runs"]] for m in measured]
    rows += [[f"{p['assignment']} full calibration, min (before -> after)", p["before_s"] / 60, p["after_s"] / 60,
              p["before_s"] / p["after_s"], None, None, None] for p in projections]
    full = epochs is None and runs >= 50
    a2 = next((p for p in projections if p["assignment"] == "a2_init"), None)
    worst = min((m["ratio"] for m in measured), default=float("nan"))
    notes = [f"per-seed timed on the first {sample} seed(s) and extrapolated; batched: {runs} seeds in one chunk "
             "(one model per depth); equal = the batched values of the sample seeds are the per-seed ones, bit for bit",
             "projection: 300 reference runs + the stored power runs per check, one process; checks without a batched "
             "statistic at their stored seconds (calibration.json), so their rows are the same before and after"]
    if epochs:
        notes.append(f"trainings shrunk to {epochs} epochs: not a calibration's figures; targets not judged")
    why = None if full else "target is for full tolerances, 50 runs"
    targets = [
        {"what": "batched vs per-seed, slowest check", "target": f">= {TARGET_RATIO:.0f}x", "measured": f"{worst:.1f}x",
         "met": worst >= TARGET_RATIO if full else None, "note": why},
        {"what": "a2_init full calibration, one process", "target": f"<= {TARGET_A2_MINUTES:.0f} min",
         "measured": f"{a2['after_s'] / 60:.1f} min" if a2 else "-",
         "met": (a2["after_s"] / 60 <= TARGET_A2_MINUTES) if full and a2 else None, "note": why},
    ]
    return {"part": "calibration", "title": "Calibration: batched statistics vs seed by seed",
            "backend": backend, "device": device, "columns": columns, "rows": rows, "notes": notes,
            "targets": targets, "extra": {"checks": measured, "projections": projections, "runs": runs,
                                          "sample": sample, "epochs": epochs}}


def parser():
    ap = part_parser(__doc__)
    ap.add_argument("--runs", type=int, help="seeds trained side by side per check (default 50; --quick 4)")
    ap.add_argument("--sample", type=int, help="seeds timed one by one for the baseline (default 3; --quick 1)")
    ap.add_argument("--epochs", type=int, help="shrink every circles training to this many epochs (--quick: 2)")
    return ap


if __name__ == "__main__":
    part_main(run, parser())
