"""Running the stochastic checks' statistics under many seeds: seed by seed or batched, in one process or
several.

:func:`run_checks` is what every calibration, sweep, power study and shard runs: each check's statistic
under each seed (a run that raises gives NaN, a failure). A check with a ``batched`` statistic gets the
seeds in chunks of ``batch_runs`` (one model of that many runs side by side; the same values as seed by
seed); :func:`in_processes` splits the seeds into contiguous slices (:func:`slice_of`), one spawned
process each (:func:`run_slice`), and joins them in seed order, so the values equal one process's.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np

from gradkit_grader.statistic import Check
from gradkit_tools.calchecks import checks_of, selected, wrong_answers

__all__ = ["BATCH_RUNS", "spread_seeds", "run_check", "run_checks", "slice_of", "run_slice", "in_processes"]

#: seeds per call of a check's ``batched`` statistic (one model of that many runs side by side); a2's depth
#: gap peaks at 1.3 GB resident with 50 (1.8 GB with 100, ~15% less time per run; benchmarks/bench_calibration.py)
BATCH_RUNS = 50


def spread_seeds(n: int, first_seed: int) -> list[int]:
    """``n`` distinct seeds in ``[0, SEED_LIMIT)`` drawn by ``default_rng(first_seed)``, like per-submission seeds.

    Consecutive integers would not do: a statistic uses ``seed + k`` (a1's fits) or ``seed + k * stride``
    (a1's loop runs), so runs ``s`` and ``s + 1`` would share trainings and not be independent.
    """
    from gradkit_grader.seeding import SEED_LIMIT

    rng, out, seen = np.random.default_rng(first_seed), [], set()
    while len(out) < n:
        s = int(rng.integers(0, SEED_LIMIT))
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def run_check(check: Check, tol: Mapping[str, Any], seeds: Sequence[int],
              components: Mapping[str, Any] | None = None, progress: Callable[[int], None] | None = None, *,
              batch_runs: int = BATCH_RUNS) -> np.ndarray:
    """``check.statistic(components, tol, seed)`` for each seed (reference components by default), ``batch_runs``
    seeds per call of ``check.batched`` (:func:`run_checks`). A run that raises (a timeout, a crash) gives NaN:
    it counts as a failure, never as a pass."""
    comps = check.reference(tol) if components is None else components
    values, _ = run_checks([(check, comps)], tol, seeds, progress, batch_runs=batch_runs)
    return values[0]


def _one(check: Check, comps: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:  # NaN: a failure
    try:
        return float(check.statistic(comps, tol, int(seed)))
    except Exception:  # noqa: BLE001 - a failing run is data: it fails the bound
        return math.nan


def _batch(check: Check, comps: Mapping[str, Any], tol: Mapping[str, Any], seeds: Sequence[int]) -> list[float]:
    """``check.batched`` of ``seeds``; when it raises (one run's crash or timeout fails the whole call), or
    gives other than one value per seed, the seeds one by one, so each failing run alone is NaN."""
    try:
        out = [float(v) for v in check.batched(comps, tol, [int(s) for s in seeds])]
        if len(out) == len(seeds):
            return out
    except Exception:  # noqa: BLE001, S110 - rerun seed by seed below
        pass
    return [_one(check, comps, tol, seed) for seed in seeds]


def run_checks(jobs: Sequence[tuple[Check, Mapping[str, Any]]], tol: Mapping[str, Any], seeds: Sequence[int],
               progress: Callable[[int], None] | None = None, *,
               batch_runs: int = BATCH_RUNS) -> tuple[list[np.ndarray], list[float]]:
    """Every ``(check, components)`` of ``jobs`` under each seed: ``([values per job], [seconds per job])``.

    The seeds go in chunks of ``batch_runs`` (<= 1: all seed by seed). A check with ``batched`` runs a chunk
    in one call (the values seed by seed would give); the others run seed-major, as one submission is
    graded: the memo of :mod:`gradkit_grader.bands` is cleared once per seed, so statistics of one test that
    share a computation (a2's three ReLU statistics) compute it once per seed. A run that raises gives NaN.
    """
    from gradkit_grader.bands import clear_memo

    values, seconds = [[] for _ in jobs], [0.0] * len(jobs)
    size = max(1, int(batch_runs))
    batched = [i for i, (check, _) in enumerate(jobs) if check.batched is not None and size > 1]
    for start in range(0, len(seeds), size):
        chunk = [int(s) for s in seeds[start:start + size]]
        for i in batched:
            check, comps = jobs[i]
            t0 = time.perf_counter()
            values[i] += _batch(check, comps, tol, chunk)
            seconds[i] += time.perf_counter() - t0
        for seed in chunk:
            clear_memo()
            for i, (check, comps) in enumerate(jobs):
                if i not in batched:
                    t0 = time.perf_counter()
                    values[i].append(_one(check, comps, tol, seed))
                    seconds[i] += time.perf_counter() - t0
            if progress:
                progress(1)
    clear_memo()
    return [np.asarray(v, dtype=float) for v in values], seconds


def slice_of(xs: Sequence, i: int, n: int) -> list:
    """The ``i``-th (from 0) of ``n`` contiguous slices of ``xs``: how :func:`in_processes` splits the seeds
    among its processes and ``gradkit calibrate --shard K/N`` among its jobs (K = i + 1)."""
    return list(xs[i * len(xs) // n:(i + 1) * len(xs) // n])


def run_slice(args: tuple, ticks: Any = None) -> tuple[list, list, list]:
    """Worker of :func:`in_processes` and of a shard (:func:`gradkit_tools.calfile.calibrate_shard`): the
    reference runs and the wrong answers' runs of some seeds; ``args`` is ``(name, tol, seeds, power_seeds,
    course, only[, batch_runs])`` (:data:`BATCH_RUNS` when left out), the seeds batched within this slice.
    ``ticks``: a queue that gets a 1 for each seed done (reference and power seeds), for a progress bar."""
    name, tol, seeds, power_seeds, course, only, *rest = args
    batch_runs = rest[0] if rest else BATCH_RUNS
    progress = ticks.put if ticks is not None else None
    checks = selected(checks_of(name, course), only)
    values, seconds = run_checks([(c, c.reference(tol)) for c in checks], tol, seeds, progress,
                                 batch_runs=batch_runs)
    wrong = [(c, comps) for c, _, comps in wrong_answers(name, course)
             if only is None or c.test in only] if power_seeds else []
    wrong_values, _ = run_checks(wrong, tol, power_seeds, progress, batch_runs=batch_runs)
    return [v.tolist() for v in values], seconds, [v.tolist() for v in wrong_values]


def in_processes(name: str, tol: Mapping[str, Any], seeds: list[int], power_seeds: list[int], workers: int,
                 progress: bool, course: str | Path | None = None, only: Collection[str] | None = None,
                 batch_runs: int = BATCH_RUNS) -> tuple[list[np.ndarray], list[float], list[np.ndarray]]:
    """:func:`run_checks` of the reference and of the wrong answers with the seeds split into ``workers``
    contiguous chunks, one fresh process each (spawned: no state shared); merged in seed order, so the
    result equals the serial one. ``progress``: one bar over every seed of every process (reference and
    power seeds), fed by the workers through a queue."""
    import queue
    from concurrent.futures import ProcessPoolExecutor, wait
    from contextlib import nullcontext
    from multiprocessing import get_context

    from tqdm import tqdm

    cut = lambda xs: [slice_of(xs, i, workers) for i in range(workers)]  # noqa: E731
    tasks = [(name, dict(tol), a, b, course, only, batch_runs) for a, b in zip(cut(seeds), cut(power_seeds))]
    ctx = get_context("spawn")
    with ctx.Manager() if progress else nullcontext() as manager, \
            ProcessPoolExecutor(workers, mp_context=ctx) as pool, \
            tqdm(total=len(seeds) + len(power_seeds), desc=f"{name} in {workers} processes", unit="seed",
                 disable=not progress, leave=False) as bar:
        ticks = manager.Queue() if manager is not None else None
        futures = [pool.submit(run_slice, task, ticks) for task in tasks]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.5)
            while ticks is not None:
                try:
                    bar.update(ticks.get_nowait())
                except queue.Empty:
                    break
        parts = [f.result() for f in futures]
    join = lambda k: [np.asarray(sum((p[k][i] for p in parts), []), dtype=float)  # noqa: E731
                      for i in range(len(parts[0][k]))]
    return join(0), [sum(p[1][i] for p in parts) for i in range(len(parts[0][1]))], join(2)
