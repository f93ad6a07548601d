"""The benchmark scripts run and report what they claim (their figures are not judged here:
speed is measured by ``benchmarks/``, never asserted in a test)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_collapse_benchmark_record(tmp_path):
    out = tmp_path / "collapse.json"
    proc = _bench("bench_collapse.py", "--quick", "--members", "20", "--epochs", "2", "--sample", "1",
                  "--repeat", "2", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads(out.read_text())
    assert [r[0] for r in rec["rows"]] == ["loop of Keras models (timed 1, extrapolated)",
                                           "gradkit ensemble (collapse_rate, median of 2)", "ratio loop / ensemble"]
    extra = rec["extra"]
    assert len(extra["ensemble_runs"]) == 2 and extra["repeat"] == 2 and extra["members"] == 20
    runs = sorted(r["seconds"] for r in extra["ensemble_runs"])
    assert extra["ensemble"]["seconds"] == runs[1]  # the median of two is the slower: reported, not the best
    naive = 20 * extra["naive"][0]["seconds"]
    assert abs(extra["ratio"] - naive / extra["ensemble"]["seconds"]) < 1e-9 * extra["ratio"]
    assert 0.0 <= extra["collapse_rate"] <= 1.0
    # targets are for 1000 members x 10 epochs: a smaller run is not judged against them
    assert [t["met"] for t in rec["targets"]] == [None, None]
    assert "n/a" in proc.stdout and "median shown" in proc.stdout


def test_memory_benchmark_names_an_unknown_assignment():
    proc = _bench("bench_memory.py", "no_such_assignment")
    assert proc.returncode == 2
    assert "no_such_assignment" in proc.stderr and "a1_clipping" in proc.stderr


def test_calibration_benchmark_record(tmp_path):
    out = tmp_path / "calibration.json"
    proc = _bench("bench_calibration.py", "--quick", "--runs", "2", "--sample", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads(out.read_text())
    checks = rec["extra"]["checks"]
    batched = [c for c in checks if c["equal"] is not None]
    assert {c["test"] for c in batched} >= {"test_glorot_uniform_trains_deep_tanh_net", "test_uniform_depth_gap"}
    for c in batched:
        assert c["runs"] == 2 and c["sample"] == 1 and c["equal"] is True  # batched = per-seed, bit for bit
    for c in checks:
        assert abs(c["ratio"] - c["per_seed_s"] / c["batched_s"]) < 1e-9 * c["ratio"]
    assert {p["assignment"] for p in rec["extra"]["projections"]} == {"a2_init"}  # --quick: QUICK's only
    a2 = rec["extra"]["projections"][0]
    assert 0 < a2["after_s"] and 0 < a2["before_s"]
    # targets are for full tolerances and 50 runs: a shrunk run is not judged against them
    assert [t["met"] for t in rec["targets"]] == [None]
    assert "full calibration" in proc.stdout and "n/a" in proc.stdout
