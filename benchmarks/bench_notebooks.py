"""Student notebook, full run: what a student waits for running the notebook top to bottom.

    .venv/bin/python benchmarks/bench_notebooks.py [--assignments a2_init] [--quick]

The cells of ``autograder/<a>/solution.ipynb`` (the student notebook with the solutions filled in)
with the otter metadata of the student release ``assignments/<a>/<a>.ipynb`` (its public tests:
the autograder's copy carries the hidden tests too, which ``grader.check`` would run) are executed
by a real Jupyter kernel (nbclient), in a fresh folder where the notebook is saved as ``<a>.ipynb``
so that its ``grader = otter.Notebook("<a>.ipynb")`` cell and every ``grader.check`` work as they
do for a student. Every cell runs, the long ``otter_ignore`` studies included; only the final
export cell (``grader.export(...)``, which writes the submission zip and would run the
notebook a second time) is left out. Per-cell times come from the kernel's own timestamps.
``--quick`` leaves out the ``otter_ignore`` cells (then it is NOT the full run).

Target (2 CPU cores): <= 3 min per notebook. Nothing asserts.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, assignments, children_cpu, part_main, part_parser, pick_assignments  # noqa: E402

TARGET_S = 180.0
QUICK = ["a3_dying_relu"]


def _seconds(cell) -> float:
    ex = cell.get("metadata", {}).get("execution", {})
    try:
        a = datetime.fromisoformat(ex["iopub.execute_input"].replace("Z", "+00:00"))
        b = datetime.fromisoformat(ex["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return (b - a).total_seconds()


def run_notebook(name: str, *, include_ignored: bool = True, timeout: int = 900) -> dict:
    import nbformat
    from nbclient import NotebookClient

    src = ROOT / "autograder" / name / "solution.ipynb"
    nb = nbformat.read(str(src), as_version=4)
    # The autograder's solution notebook carries EVERY test (hidden ones too) in its otter metadata,
    # and grader.check runs what the metadata holds; a student's notebook carries the public tests
    # only. So: the solution's cells with the student release's metadata.
    student = nbformat.read(str(ROOT / "assignments" / name / f"{name}.ipynb"), as_version=4)
    nb.metadata["otter"] = student.metadata.get("otter", {})
    work = Path(tempfile.mkdtemp(prefix=f"bench-nb-{name}-"))
    try:
        nbformat.write(nb, str(work / f"{name}.ipynb"))  # what otter.Notebook(...) opens for its tests
        keep = []
        for cell in nb.cells:
            if cell.cell_type == "code" and "grader.export(" in cell.source:
                continue
            if not include_ignored and "otter_ignore" in cell.get("metadata", {}).get("tags", []):
                continue
            keep.append(cell)
        nb.cells = keep
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(work)}})
        t0, c0 = time.perf_counter(), children_cpu()
        client.execute()
        wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cells, errors, checks = [], [], []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        kind = ("otter_ignore" if "otter_ignore" in tags else
                "grader.check" if "grader.check(" in cell.source else
                "answer" if "otter_assign_solution_cell" in tags else "other")
        s = _seconds(cell)
        cells.append({"index": i, "kind": kind, "seconds": s, "head": cell.source.strip().splitlines()[0][:60]
                      if cell.source.strip() else ""})
        errs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        errors += [f"cell {i} ({kind}): {o.get('ename')}: {o.get('evalue', '')[:200]}" for o in errs]
        if kind == "grader.check":
            text = " ".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                            for o in cell.get("outputs", []))
            checks.append({"index": i, "output": text[:300]})
            if "passed" not in text.lower() or "fail" in text.lower():
                errors.append(f"cell {i} ({cell.source.strip()}): public tests did not all pass: {text[:200]!r}")
    return {"assignment": name, "wall_s": wall, "cpu_s": cpu, "cells": cells, "errors": errors, "checks": checks,
            "include_ignored": include_ignored}


def run(args) -> dict:
    from _common import env_backend_device

    names = pick_assignments(args.assignments, QUICK if args.quick else assignments())
    full = not args.quick
    backend, device = env_backend_device()
    os.chdir(ROOT)
    columns = ["assignment", "wall s", "kernel cpu s", "cells s", "otter_ignore s", "answers+checks s", "other s",
               "kernel+overhead s", "slowest cell", "errors"]
    rows, targets, detail, notes = [], [], [], []
    for name in names:
        r = run_notebook(name, include_ignored=full)
        detail.append(r)
        by = lambda *kinds: sum(c["seconds"] for c in r["cells"] if c["kind"] in kinds)  # noqa: E731
        cells_s = by("otter_ignore", "grader.check", "answer", "other")
        slow = max(r["cells"], key=lambda c: c["seconds"])
        rows.append([name, r["wall_s"], r["cpu_s"], cells_s, by("otter_ignore") if full else None,
                     by("answer", "grader.check"), by("other"), r["wall_s"] - cells_s,
                     f"#{slow['index']} {slow['kind']} ({slow['seconds']:.0f} s)", len(r["errors"])])
        notes += [f"{name}: {e}" for e in r["errors"]]
        targets.append({"what": f"{name} student notebook, full run", "target": f"<= {TARGET_S:.0f} s",
                        "measured": f"{r['wall_s']:.0f} s", "met": (r["wall_s"] <= TARGET_S) if full else None,
                        "note": None if full else "--quick leaves out the otter_ignore cells"})
    notes.insert(0, "wall s: nbclient, kernel start to last cell; the export cell is not run. kernel cpu s: "
                 "CPU seconds of the kernel process (all threads). "
                 "otter_ignore s: long studies a student runs but grading skips; answers+checks s: answer cells "
                 "and grader.check (public tests); other s: set-up, demos, plots.")
    return {"part": "notebooks", "title": "Student notebooks, full run (Jupyter kernel, top to bottom)",
            "backend": backend, "device": device, "columns": columns, "rows": rows, "notes": notes,
            "targets": targets, "extra": {"notebooks": detail}}


def parser():
    ap = part_parser(__doc__)
    ap.add_argument("--assignments", help=f"comma-separated (default: all; --quick: {','.join(QUICK)})")
    return ap


if __name__ == "__main__":
    part_main(run, parser())
