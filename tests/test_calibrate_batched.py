"""Batched statistics (``Check.batched``): the runs of many seeds trained side by side as members of one
model give the values the statistic gives seed by seed, bit for bit, and calibration runs them in chunks
of ``batch_runs`` seeds (gradkit_tools.calibrate.run_checks), shards and processes included."""
import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest

from gradkit_grader.statistic import Check
from gradkit_tools.calibrate import checks_of, run_check, run_checks, spread_seeds

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
#: (assignment, hidden test) of the circles checks, whose batched statistic this module tests
BATCHED = [("a2_init", "test_glorot_uniform_trains_deep_tanh_net"), ("a2_init", "test_uniform_depth_gap")]
#: the other checks with a batched statistic, and the module that tests them
ELSEWHERE = {("a1_clipping", "test_training_loop_matches_keras"): "tests/test_batched_a1.py",
             ("a1_clipping", "test_optimizer_converges"): "tests/test_batched_a1.py",
             ("a3_dying_relu", "test_run_study_relu"): "tests/test_batched_a3.py",
             ("a3_dying_relu", "test_run_study_leaky"): "tests/test_batched_a3.py",
             ("a4_resnet", "test_resnet_learns_spirals"): "tests/test_a4_spirals.py",
             ("a4_resnet", "test_resnet_trains"): "tests/test_batched_a4.py",
             ("a4_resnet", "test_resnet_gradient"): "tests/test_batched_a4.py"}


def _tol(name: str) -> dict:
    """The assignment's tolerances with the circles runs shrunk for speed (a copy: 2 epochs, 8 nets per seed)."""
    from gradkit_tools.course import tolerances

    return {**tolerances(name), "circles_epochs": 2, "gap_epochs": 2, "circles_members": 8}


def _check(name: str, test: str) -> Check:
    return next(c for c in checks_of(name) if c.test == test)


def test_every_batched_check_is_listed_here():
    found = sorted((p.parent.name, c.test) for p in COURSE.glob("*/statistics.py")
                   for c in checks_of(p.parent.name) if c.batched is not None)
    assert found == sorted(BATCHED + list(ELSEWHERE))
    assert all((ROOT / f).is_file() for f in ELSEWHERE.values())


def _blocks(probabilities: list, chunks: list[int], models: int, members: int) -> dict:
    """``{(run, model): test-set probabilities (n_test, members)}`` from the ``predict`` outputs of runs
    trained in chunks of the sizes ``chunks``, ``models`` models per chunk (a gap: shallow, deep)."""
    out, arrays, first = {}, iter(probabilities), 0
    for size in chunks:
        for model in range(models):
            a = next(arrays)
            out.update({(first + k, model): a[:, k * members:(k + 1) * members] for k in range(size)})
        first += size
    return out


@pytest.mark.parametrize("name,test", BATCHED)
def test_batched_values_equal_the_per_seed_statistic(name, test, predictions):
    """4 seeds in chunks of 3 and 1, against the statistic seed by seed: the same floats, and the nets'
    test-set probabilities bit for bit (accuracies alone, k/500, would hide a last-bit difference). A wrong
    answer (kernels from U(0, 1) for Glorot's, a range centred on 0 for the gap) goes the same way.

    Bit for bit where each seed has a multiple of 8 nets (tolerances.yml: 16; here 8): with 4 nets per seed,
    a seed's nets sit elsewhere in the vector lanes of the member axis and the probabilities differed in
    the last bits (the accuracies did not), measured on this project's 2-core CI machine."""
    tol, check = _tol(name), _check(name, test)
    seeds, models, m = spread_seeds(4, 77), 2 if test == "test_uniform_depth_gap" else 1, _tol(name)["circles_members"]

    comps = check.reference(tol)
    alone = [check.statistic(comps, tol, s) for s in seeds]
    p_alone = _blocks(predictions, [1] * len(seeds), models, m)
    predictions.clear()
    together = run_check(check, tol, seeds, batch_runs=3)
    p_together = _blocks(predictions, [3, 1], models, m)
    assert together.tolist() == alone
    assert p_together.keys() == p_alone.keys()
    assert all(np.array_equal(p_together[k], p_alone[k]) for k in p_alone)
    key = "glorot_uniform" if "glorot_uniform" in comps else "random_uniform"
    lo, hi = (0.0, 1.0) if key == "glorot_uniform" else (-0.5, 0.5)

    def uniform(shape, *args, dtype="float32", seed=None, **kwargs):
        return keras.random.uniform(shape, lo, hi, dtype=dtype, seed=seed)

    wrong = {key: uniform}
    assert run_check(check, tol, seeds[:2], components=wrong, batch_runs=2).tolist() == [
        check.statistic(wrong, tol, s) for s in seeds[:2]]


def _counting_check(calls: list, bad: int | None = None) -> Check:
    def statistic(components, tol, seed):
        calls.append(("one", seed))
        if seed == bad:
            raise RuntimeError("this run crashes")
        return float(np.random.default_rng(seed).normal())

    def batched(components, tol, seeds):
        calls.append(("batch", list(seeds)))
        if bad in seeds:
            raise RuntimeError("one run of the batch crashes")
        return [float(np.random.default_rng(s).normal()) for s in seeds]

    return Check("toy", "test_toy", statistic, "x_min", None, lambda tol: {}, batched=batched)


def test_run_checks_calls_batched_in_chunks_and_falls_back_seed_by_seed():
    calls: list = []
    check, seeds = _counting_check(calls), list(range(10))
    plain = Check("plain", "test_plain", lambda c, t, s: float(s), "x_min", None, lambda tol: {})
    ticks: list = []
    (values, same), seconds = run_checks([(check, {}), (plain, {})], {}, seeds, ticks.append, batch_runs=4)
    assert calls == [("batch", [0, 1, 2, 3]), ("batch", [4, 5, 6, 7]), ("batch", [8, 9])]
    assert values.tolist() == [float(np.random.default_rng(s).normal()) for s in seeds]
    assert same.tolist() == seeds and len(seconds) == 2 and sum(ticks) == 10
    calls.clear()
    assert run_check(check, {}, seeds[:3], batch_runs=1).tolist() == values[:3].tolist()
    assert calls == [("one", 0), ("one", 1), ("one", 2)]  # batch_runs 1: the per-seed path
    calls.clear()
    broken = _counting_check(calls, bad=5)
    got = run_check(broken, {}, seeds, batch_runs=4)
    assert calls[:2] == [("batch", [0, 1, 2, 3]), ("batch", [4, 5, 6, 7])]
    assert calls[2:6] == [("one", s) for s in (4, 5, 6, 7)]  # the failed chunk again, seed by seed
    assert math.isnan(got[5]) and np.array_equal(np.delete(got, 5), np.delete(values, 5))


def test_sweep_processes_and_shards_batch_within_their_seeds(monkeypatch):
    """`sweep` and the worker of processes and shards (`run_slice`) give the circles check its seeds in chunks of
    ``batch_runs``, each slice of seeds on its own."""
    from gradkit_grader.course.a2_init import circles
    from gradkit_tools.calibrate import sweep
    from gradkit_tools.calruns import run_slice

    sizes: list = []
    train = circles.train_nets

    def counting(*args, seeds, **kwargs):
        sizes.append(len(seeds))
        return train(*args, seeds=seeds, **kwargs)

    monkeypatch.setattr(circles, "train_nets", counting)
    tol, test = _tol("a2_init"), "test_glorot_uniform_trains_deep_tanh_net"
    [rep] = sweep("a2_init", 5, tol=tol, only=[test], budget=1e-4, progress=False, batch_runs=3)
    assert sizes == [3, 2] and len(rep.values) == 5
    sizes.clear()
    seeds = spread_seeds(5, 1)
    values, _, wrong = run_slice(("a2_init", tol, seeds[:3], [], None, [test], 2))
    assert sizes == [2, 1] and values[0] == rep.values[:3] and wrong == []


@pytest.mark.slow
@pytest.mark.parametrize("name,test", BATCHED)
def test_batched_values_equal_the_committed_calibration(name, test):
    """At the real tolerances, the first 20 stored seeds of course/<name>/calibration.json (computed seed
    by seed) come back bit for bit from one batched chunk (a2: ~10 s and ~40 s on 2 cores)."""
    from gradkit_tools.course import tolerances

    doc = json.loads((COURSE / name / "calibration.json").read_text())
    entry = next(v for k, v in doc["checks"].items() if k.startswith(f"{test}:"))
    seeds = spread_seeds(doc["runs"], doc["first_seed"])[:20]
    assert run_check(_check(name, test), tolerances(name), seeds, batch_runs=20).tolist() == entry["values"][:20]
