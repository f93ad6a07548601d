"""Peak memory of grading one submission: where course/grading.yml's ``grade.memory_limit_mb`` comes from.

``gradkit grade`` limits the address space (RLIMIT_AS, inherited by otter's kernel) of each
grading child. This script runs the real ``otter run`` of each assignment's solution (the
heaviest honest submission we have) and samples, every 0.2 s, every process of the tree:
the largest virtual size (what RLIMIT_AS counts, per process) and the largest resident set.

    python benchmarks/bench_memory.py [a1_clipping ...]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, assignments  # noqa: E402


def peak_memory(name: str) -> tuple[float, float, float]:
    """(peak virtual MB of one process, peak resident MB of one process, seconds) for the solution of ``name``."""
    zip_path = ROOT / "autograder" / name / "autograder.zip"
    nb = ROOT / "autograder" / name / "solution.ipynb"
    with tempfile.TemporaryDirectory() as tmp:
        sub = Path(tmp) / f"{name}.ipynb"
        sub.write_bytes(nb.read_bytes())
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "otter", "run", "-a", str(zip_path), "-o", tmp, "--no-logo",
                                 str(sub)], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        vms = rss = 0.0
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        mi = p.memory_info()
                        vms, rss = max(vms, mi.vms / 2**20), max(rss, mi.rss / 2**20)
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            time.sleep(0.2)
        if proc.returncode != 0:
            raise RuntimeError(f"otter run of {name}'s solution exited with status {proc.returncode}")
        return vms, rss, time.perf_counter() - t0


def main(argv: list[str]) -> None:
    known = assignments()  # a master course/<a>/<a>.ipynb and a release autograder/<a>/autograder.zip
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", metavar="assignment",
                    help=f"assignments to measure (default: all of {', '.join(known)})")
    names = ap.parse_args(argv).names or known
    unknown = [n for n in names if n not in known]
    if unknown:
        ap.error(f"no master course/<name>/<name>.ipynb with a release autograder/<name>/autograder.zip for "
                 f"{', '.join(unknown)}; known: {', '.join(known)}")
    print(f"{'assignment':<16}{'peak virtual MB':>16}{'peak resident MB':>18}{'seconds':>9}")
    for name in names:
        vms, rss, s = peak_memory(name)
        print(f"{name:<16}{vms:>16.0f}{rss:>18.0f}{s:>9.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
