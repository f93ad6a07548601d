"""Run gradkit's benchmarks and print one table per part.

    python benchmarks/run.py                      # everything, ~15 min on 2 idle cores
    python benchmarks/run.py --quick              # smaller sizes: a smoke run
    python benchmarks/run.py --only collapse      # one part (repeat --only for several)
    python benchmarks/run.py --backend jax        # every selected part under KERAS_BACKEND=jax
    python benchmarks/run.py --json bench.json    # also save every result record

Parts (each its own module, runnable alone; each runs here in a child process with the backend
set in its environment, so TensorFlow and JAX never share a process):

  collapse   bench_collapse.py   dying-ReLU study: ensemble trainer vs a loop of Keras models
  hidden     bench_hidden.py     hidden-test time per question / assignment; one graded submission
  notebooks  bench_notebooks.py  student notebooks run top to bottom in a Jupyter kernel
  grade      bench_grade.py      `gradkit grade` throughput on N copies, --jobs 1 vs 2
  harness    bench_harness.py    grading time per submission: the harness vs otter's runner (target <= 1.5x)
  report     bench_report.py     `gradkit report` for 300 submissions; similarity vs a per-pair script
  calibration bench_calibration.py calibration runs: many seeds side by side vs seed by seed

``--backend both`` (the default of a full run) runs every part under TensorFlow, then, within the
time budget, the collapse study and the in-process hidden tests under JAX (the JAX rows say so);
``--quick`` runs TensorFlow only unless ``--backend`` is given. A GPU is
used by whichever backend sees one; the header lists the GPUs nvidia-smi reports.

Benchmarks, not tests: nothing asserts; the targets are printed as MET / MISSED. Exit status 0
unless a part crashed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _reexec_in_venv() -> None:
    """``python benchmarks/run.py`` with a Python that lacks gradkit: use the repository's .venv."""
    try:
        import gradkit  # noqa: F401
    except ImportError:
        venv_py = ROOT / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        if venv_py.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
            os.execv(str(venv_py), [str(venv_py), *sys.argv])
        sys.exit("gradkit is not installed for this Python; run `python3 dev.py run` once (it creates .venv/)")


_reexec_in_venv()
sys.path.insert(0, str(HERE))
from _common import loadavg, machine  # noqa: E402

PARTS = ["collapse", "hidden", "notebooks", "grade", "harness", "report", "calibration"]
#: what runs under JAX when --backend both (the budget of a 15-minute run on 2 cores)
JAX_EXTRA = {"collapse": [], "hidden": ["--no-otter"]}
PART_TIMEOUT_S = 1500


def header(m: dict, backends: list[str]) -> str:
    gpus = ", ".join(m["gpus"]) or "none (nvidia-smi sees no GPU)"
    return "\n".join([
        "gradkit benchmarks (benchmarks/run.py)",
        f"machine : {m['cpu']}, {m['cores']} usable cores, {m['platform']}; GPU: {gpus}",
        f"load    : {m['load_start'][0]} / {m['load_start'][1]} / {m['load_start'][2]} (1/5/15-min average at start)",
        f"software: Python {m['python']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}, JAX {m['jax']}, "
        f"otter-grader {m['otter']}, gradkit {m['gradkit']}",
        f"backends: {', '.join(backends)}   date: {m['date']}",
    ])


def run_part(part: str, backend: str, extra: list[str], quick: bool, log: Path) -> dict | None:
    """Run ``bench_<part>.py`` in a child with ``KERAS_BACKEND=backend``; its table goes to stdout."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    cmd = [sys.executable, str(HERE / f"bench_{part}.py"), "--json", str(out), *extra] + (["--quick"] if quick else [])
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONUNBUFFERED="1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"\n--- {part} [{backend}] ({' '.join(cmd[2:]) or 'defaults'}) ...", flush=True)
    t0 = time.perf_counter()
    with open(log, "ab") as err:
        err.write(f"\n===== {part} [{backend}]\n".encode())
        err.flush()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stderr=err, timeout=PART_TIMEOUT_S)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    rec = None
    if code == 0:
        try:
            rec = json.loads(out.read_text())
        except (OSError, ValueError):
            code = "no result file"
    out.unlink(missing_ok=True)
    if rec is None:
        tail = log.read_text(errors="replace")[-3000:]
        print(f"!!! {part} [{backend}] failed ({code}) after {time.perf_counter() - t0:.0f} s; "
              f"end of its stderr ({log}):\n{tail}", flush=True)
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--only", action="append", choices=PARTS, metavar="PART",
                    help=f"run only this part ({', '.join(PARTS)}); repeatable")
    ap.add_argument("--backend", choices=["both", "tensorflow", "jax"],
                    help="both (default of a full run): every part on TensorFlow, then collapse + in-process "
                         "hidden tests on JAX; tensorflow (default with --quick) / jax: every selected part "
                         "on that backend only")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    ap.add_argument("--json", metavar="PATH", help="save the machine header and every result record")
    ap.add_argument("--log", metavar="PATH", help="the parts' stderr (default: a temp file)")
    args = ap.parse_args(argv)

    args.backend = args.backend or ("tensorflow" if args.quick else "both")
    parts = [p for p in PARTS if p in (args.only or PARTS)]
    plan: list[tuple[str, str, list[str]]] = []
    if args.backend in ("both", "tensorflow"):
        plan += [(p, "tensorflow", []) for p in parts]
    if args.backend == "jax":
        plan += [(p, "jax", []) for p in parts]
    elif args.backend == "both":
        plan += [(p, "jax", JAX_EXTRA[p]) for p in parts if p in JAX_EXTRA]
    log = Path(args.log) if args.log else Path(tempfile.mkstemp(prefix="gradkit-bench-", suffix=".log")[1])

    m = machine()
    print(header(m, sorted({b for _, b, _ in plan})), flush=True)
    if m["load_start"][0] > 0.5 * m["cores"]:
        print(f"WARNING: load average {m['load_start'][0]} on {m['cores']} cores: other work shares the CPUs, "
              "wall times are inflated (the cpu s columns are less affected)", flush=True)
    t0 = time.perf_counter()
    records, failed = [], []
    for part, backend, extra in plan:
        rec = run_part(part, backend, extra, args.quick, log)
        if rec is None:
            failed.append(f"{part} [{backend}]")
            continue
        if extra:
            rec.setdefault("notes", []).append(f"run with {' '.join(extra)} under {backend} (time budget)")
        records.append(rec)
    total = time.perf_counter() - t0

    print("\n=== summary " + "=" * 60)
    for rec in records:
        for t in rec.get("targets", []):
            verdict = {True: "MET   ", False: "MISSED", None: "n/a   "}[t.get("met")]
            print(f"{verdict} [{rec['backend']}] {t['what']}: {t['target']}; measured {t['measured']}")
    print(f"parts failed: {', '.join(failed) or 'none'}")
    print(f"total {total / 60:.1f} min ({'quick' if args.quick else 'full'} run); load average "
          f"{m['load_start'][0]} at start, {loadavg()[0]} at end; stderr of the parts: {log}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": m, "total_s": round(total, 1), "quick": args.quick,
                                               "failed": failed, "parts": records}, indent=1, default=str) + "\n")
        print(f"results saved to {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
