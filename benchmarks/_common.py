"""Shared pieces of the benchmark scripts: machine facts, tables, the result record.

Every ``bench_*.py`` module has ``run(args) -> dict`` (one result record) and a
``main()`` that prints the record as a table and optionally saves it as JSON
(``--json PATH``). A record is a plain dict::

    {"part": "collapse", "title": "...", "backend": "tensorflow", "device": "cpu",
     "quick": False, "columns": [...], "rows": [[...], ...], "notes": ["..."],
     "targets": [{"what": "...", "target": "...", "measured": "...", "met": True}],
     "load_start": [1.0, 0.8, 0.5], "load_end": [...], "seconds": 12.3, "extra": {...}}

Nothing here imports Keras: ``run.py`` reads machine facts without starting a backend.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent

# Quiet TensorFlow's C++ start-up chatter in this process and every child it starts.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    """CPU cores this process may use (affinity), not the host's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return [float("nan")] * 3


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and their descendants."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def gpu_names() -> list[str]:
    """NVIDIA GPUs seen by nvidia-smi (empty without a driver); no backend is started."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()] if out.returncode == 0 else []


def machine() -> dict:
    """Facts for the header of every table."""
    return {
        "cpu": cpu_model(), "cores": cores(), "load_start": loadavg(),
        "python": platform.python_version(), "platform": platform.platform(terse=True),
        "tensorflow": version("tensorflow") if version("tensorflow") != "-" else version("tensorflow-cpu"),
        "keras": version("keras"), "jax": version("jax"), "otter": version("otter-grader"),
        "gradkit": version("gradkit"), "gpus": gpu_names(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def backend_device() -> tuple[str, str]:
    """``(backend, device)`` of the Keras backend this process runs (imports Keras)."""
    import keras

    backend = keras.backend.backend()
    device = "cpu"
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            device = f"gpu x{len(gpus)}" if gpus else "cpu"
        elif backend == "jax":
            import jax

            device = ", ".join(sorted({d.platform for d in jax.devices()}))
    except Exception:  # noqa: BLE001 - the figure matters more than the device label
        device = "?"
    return backend, device


def env_backend_device() -> tuple[str, str]:
    """``(backend, device)`` that child processes (kernels, otter) will use, without importing Keras."""
    gpus = gpu_names()
    return os.environ.get("KERAS_BACKEND", "tensorflow"), (f"gpu: {', '.join(gpus)}" if gpus else "cpu")


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        return f"{v:.{digits}f}"
    return str(v)


def table(columns: list[str], rows: list[list]) -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and rows
               for i in range(len(columns))]

    def line(vals):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def render(rec: dict) -> str:
    """The printed form of one result record."""
    ls, le = rec.get("load_start") or [], rec.get("load_end") or []
    head = (f"== {rec['title']}  [backend {rec.get('backend', '?')}, device {rec.get('device', '?')}"
            f"{', QUICK sizes' if rec.get('quick') else ''}; load avg {ls[0] if ls else '?'} -> "
            f"{le[0] if le else '?'}; {rec.get('seconds', 0):.0f} s]")
    parts = [head, table(rec["columns"], rec["rows"])]
    for t in rec.get("targets", []):
        verdict = {True: "MET", False: "MISSED", None: "n/a"}[t.get("met")]
        parts.append(f"target: {t['what']}: {t['target']}; measured {t['measured']} -> {verdict}"
                     + (f" ({t['note']})" if t.get("note") else ""))
    parts += [f"note: {n}" for n in rec.get("notes", [])]
    return "\n".join(parts)


def part_parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    ap.add_argument("--json", metavar="PATH", help="also save the result record as JSON")
    return ap


def part_main(run, ap: argparse.ArgumentParser) -> None:
    """Parse, run, print the table, save the JSON."""
    args = ap.parse_args()
    t0, load0 = time.perf_counter(), loadavg()
    rec = run(args)
    rec.setdefault("quick", bool(args.quick))
    rec.setdefault("load_start", load0)
    rec["load_end"] = loadavg()
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    print(render(rec), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rec, indent=1, default=str) + "\n")


def assignments() -> list[str]:
    """Assignments with a master and a release (``course/<a>/<a>.ipynb`` and ``autograder/<a>/autograder.zip``)."""
    return sorted(p.parent.name for p in (ROOT / "course").glob("*/*.ipynb")
                  if p.stem == p.parent.name and (ROOT / "autograder" / p.stem / "autograder.zip").is_file())


def pick_assignments(spec: str | None, default: list[str]) -> list[str]:
    known = assignments()
    if not spec:
        return [a for a in default if a in known]
    want = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [a for a in want if a not in known]
    if bad:
        sys.exit(f"unknown assignment(s) {', '.join(bad)}; have {', '.join(known)}")
    return want
