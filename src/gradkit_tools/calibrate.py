"""Seed sweeps and calibration of the stochastic hidden tests' bounds.

Every stochastic hidden test computes its statistic with a function of its assignment's
``statistics.py`` (listed in its ``CHECKS``, :class:`gradkit_grader.statistic.Check`).
Running that function with gradkit's reference components under many seeds gives the
distribution a correct submission's statistic is drawn from:

* :func:`sweep` (``gradkit sweep``): a few seeds (20); reports each check's margin, how
  many standard deviations the reference mean sits from the full-credit bound.
* :func:`calibrate` (``gradkit calibrate``): at least 300 seeds; also the observed
  false-fail count, its 95% Clopper-Pearson upper bound, the false-fail probability of a normal
  and of a skew-normal fitted to the runs (the larger is the budget test: at most the budget
  declared in the assignment's tolerances.yml), and the power against the wrong answers each
  check lists. The distributions are written to ``course/<name>/calibration.json``, and the
  assignment's NOTES.md quotes them in a section generated from that file.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np

from gradkit_grader.statistic import Check
from gradkit_tools.calfile import (  # noqa: F401 - the calibration file's operations, importable from here too
    _keep_stored,
    _stored_report,
    _write,
    calibrate_shard,
    calibration_problems,
    merge_shards,
    refit,
    repower,
)
from gradkit_tools.calreport import DEFAULT_BUDGET, MIN_POWER, CheckReport, _power_entry, format_reports, summarize  # noqa: F401

__all__ = ["CheckReport", "checks_of", "budgets", "spread_seeds", "run_check", "run_checks", "summarize", "sweep",
           "calibrate", "refit", "repower", "wrong_answers", "calibration_problems", "format_reports", "DEFAULT_BUDGET",
           "MIN_CALIBRATION_RUNS", "BATCH_RUNS", "MIN_POWER", "calibrate_shard", "merge_shards"]

MIN_CALIBRATION_RUNS = 300  # empirical bounds rest on >= 300 reference runs
#: seeds per call of a check's ``batched`` statistic (one model of that many runs side by side); a2's depth
#: gap peaks at 1.3 GB resident with 50 (1.8 GB with 100, ~15% less time per run; benchmarks/bench_calibration.py)
BATCH_RUNS = 50


def checks_of(name: str, course: str | Path | None = None) -> tuple[Check, ...]:
    """The :class:`Check` tuple of assignment ``name`` (``CHECKS`` of its ``statistics.py``)."""
    from gradkit_tools.course import assignment, statistics_module

    a = assignment(name, course)
    if not a.statistics_file.is_file():
        raise ValueError(f"no stochastic checks for {name!r}: {a.statistics_file} is missing")
    return tuple(statistics_module(a).CHECKS)


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


def _power(check: Check, tol: Mapping[str, Any], seeds: Sequence[int],
           wrong: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """Per wrong answer (``{label: components}``): how often it fails the full-credit bound (and earns nothing)."""
    return {label: _power_entry(check, tol, run_check(check, tol, seeds, components=comps))
            for label, comps in wrong.items()}


def _test_params(assignment: Any) -> dict[str, tuple[str, ...]]:
    """``{hidden test case: its parameter names}``: the student names the test receives."""
    import ast

    from gradkit_tools.master import test_cells

    out = {}
    for name, cell in test_cells(assignment.master).items():
        fn = next(n for n in ast.parse(cell.source).body if isinstance(n, ast.FunctionDef) and n.name == name)
        out[name] = tuple(a.arg for a in fn.args.args)
    return out


def wrong_answers(name: str, course: str | Path | None = None) -> list[tuple[Check, str, dict[str, Any]]]:
    """``[(check, entry, components)]``: every wrong answer of the assignment's catalogue
    (``course/<name>/answers.yml``) marked ``power: true`` whose ``fails:`` lists the check's hidden
    test, as the objects that test receives (its parameter names looked up in the entry's namespace)."""
    from gradkit_tools import answers
    from gradkit_tools.course import assignment, find_course

    a = assignment(name, course)
    params = _test_params(a)
    released = find_course(course).parent / "assignments"
    out = []
    for check in checks_of(name, course):
        cases = [p for case, p in params.items() if case == check.test or case.startswith(f"{check.test}_band_")]
        if not cases:
            raise ValueError(f"{a.master}: no hidden test {check.test} (named by a check of {a.statistics_file})")
        for entry in answers.wrong_for(a, check.test, power=True):
            ns = answers.namespace(a, entry, assignments=released)
            out.append((check, entry, {n: ns[n] for n in cases[0] if n in ns}))
    return out


def budgets(name: str, course: str | Path | None = None) -> dict[str, dict]:
    """``{test: {"budget": float, "method": "exact" | "empirical"}}`` of assignment ``name``
    (``budgets:`` of its tolerances.yml); every check of :func:`checks_of` must have one, within
    :data:`DEFAULT_BUDGET`."""
    from gradkit_tools.course import ConfigError
    from gradkit_tools.course import budgets as declared_budgets

    declared = declared_budgets(name, course)
    for check in checks_of(name, course):
        entry = declared.get(check.test)
        if entry is None:
            raise ConfigError(f"{name}/tolerances.yml budgets.{check.test} is missing: declare the false-fail "
                              "budget of this stochastic test and its method")
        if not 0 < entry["budget"] <= DEFAULT_BUDGET or entry["method"] not in ("exact", "empirical"):
            raise ConfigError(f"{name}/tolerances.yml budgets.{check.test}: budget must be in "
                              f"(0, {DEFAULT_BUDGET:g}] and method exact or empirical, got {entry}")
    return declared


def _budget_share(budget: float, check: Check, all_checks: Sequence[Check]) -> float:
    """A test with several statistics fails when any of them does: each gets an equal share of its budget."""
    return budget / sum(c.test == check.test for c in all_checks)


def sweep(name: str, seeds: int | Sequence[int] = 20, *, tol: Mapping[str, Any] | None = None, first_seed: int = 1,
          budget: float | None = None, power_runs: int = 0, workers: int = 1, progress: bool = True,
          course: str | Path | None = None, only: Collection[str] | None = None,
          batch_runs: int = BATCH_RUNS) -> list[CheckReport]:
    """Run every check of assignment ``name`` (or those of the hidden tests ``only``) with the reference
    components under ``seeds``.

    ``seeds``: a count (that many :func:`spread_seeds` from ``first_seed``) or the seeds themselves.
    ``budget``: false-fail budget of every check (default: each check's from tolerances.yml).
    ``power_runs``: runs per wrong answer (0: skip the power study).
    ``workers``: processes sharing the seeds (the same numbers as one process; each imports Keras anew).
    ``batch_runs``: seeds per call of a check's ``batched`` statistic (:func:`run_checks`), within each
    process's seeds.
    ``course``: the course folder (default :func:`gradkit_tools.course.find_course`).
    """
    from tqdm import tqdm

    from gradkit_tools.course import tolerances

    declared = budgets(name, course) if budget is None else {}
    tol = dict(tolerances(name, course) if tol is None else tol)
    all_checks = checks_of(name, course)
    seed_list = spread_seeds(seeds, first_seed) if isinstance(seeds, int) else [int(s) for s in seeds]
    jobs = [(check, check.reference(tol)) for check in _selected(all_checks, only)]
    wrong = [w for w in wrong_answers(name, course) if only is None or w[0].test in only] if power_runs else []
    power_seeds = seed_list[:power_runs] if power_runs and wrong else []
    if workers > 1:
        values, seconds, wrong_values = _in_processes(name, tol, seed_list, power_seeds, workers, progress, course,
                                                      only, batch_runs)
    else:
        with tqdm(total=len(seed_list), desc=f"{name} reference", disable=not progress, leave=False) as bar:
            values, seconds = run_checks(jobs, tol, seed_list, progress=bar.update, batch_runs=batch_runs)
        with tqdm(total=len(power_seeds), desc=f"{name} wrong answers", disable=not progress or not power_seeds,
                  leave=False) as bar:
            wrong_values, _ = run_checks([(c, comps) for c, _, comps in wrong], tol, power_seeds, progress=bar.update,
                                         batch_runs=batch_runs)
    return _reports(name, tol, [c for c, _ in jobs], values, seconds, wrong, wrong_values, budget=budget,
                    declared=declared, all_checks=all_checks, power=bool(power_runs))


def _reports(name: str, tol: Mapping[str, Any], checks: Sequence[Check], values: Sequence[np.ndarray],
             seconds: Sequence[float], wrong: Sequence[tuple], wrong_values: Sequence[np.ndarray], *,
             budget: float | None, declared: Mapping, all_checks: Sequence[Check], power: bool) -> list[CheckReport]:
    """The reports of :func:`sweep` from its runs (also of a merge of shards, :func:`merge_shards`):
    ``values[i]``/``seconds[i]`` are ``checks[i]``'s runs, ``wrong_values[j]`` those of ``wrong[j]``."""
    reports = []
    for check, vals, secs in zip(checks, values, seconds):
        share = _budget_share(budget if budget is not None else declared[check.test]["budget"], check, all_checks)
        rep = summarize(check, name, tol, vals, secs, share)
        rep.method = declared.get(check.test, {}).get("method", "empirical")
        if power:
            rep.power = {label: _power_entry(c, tol, v) for (c, label, _), v in zip(wrong, wrong_values) if c is check}
        reports.append(rep)
    return reports


def _selected(checks: Sequence[Check], only: Collection[str] | None) -> list[Check]:
    """The checks of the hidden tests ``only`` (all of them for None); an unknown test name is an error."""
    if only is None:
        return list(checks)
    unknown = sorted(set(only) - {c.test for c in checks})
    if unknown:
        raise ValueError(f"no stochastic hidden test {', '.join(unknown)}; known: "
                         f"{', '.join(sorted({c.test for c in checks}))}")
    return [c for c in checks if c.test in only]


def _part(xs: Sequence, i: int, n: int) -> list:
    """The ``i``-th (from 0) of ``n`` contiguous slices of ``xs``: how :func:`_in_processes` splits the seeds
    among its processes and ``gradkit calibrate --shard K/N`` among its jobs (K = i + 1)."""
    return list(xs[i * len(xs) // n:(i + 1) * len(xs) // n])


def _chunk(args: tuple) -> tuple[list, list, list]:
    """Worker of :func:`_in_processes` and of a shard (:func:`gradkit_tools.calfile.calibrate_shard`): the
    reference runs and the wrong answers' runs of some seeds; ``args`` is ``(name, tol, seeds, power_seeds,
    course, only[, batch_runs])`` (:data:`BATCH_RUNS` when left out), the seeds batched within this slice."""
    name, tol, seeds, power_seeds, course, only, *rest = args
    batch_runs = rest[0] if rest else BATCH_RUNS
    checks = _selected(checks_of(name, course), only)
    values, seconds = run_checks([(c, c.reference(tol)) for c in checks], tol, seeds, batch_runs=batch_runs)
    wrong = [(c, comps) for c, _, comps in wrong_answers(name, course)
             if only is None or c.test in only] if power_seeds else []
    wrong_values, _ = run_checks(wrong, tol, power_seeds, batch_runs=batch_runs)
    return [v.tolist() for v in values], seconds, [v.tolist() for v in wrong_values]


def _in_processes(name: str, tol: Mapping[str, Any], seeds: list[int], power_seeds: list[int], workers: int,
                  progress: bool, course: str | Path | None = None, only: Collection[str] | None = None,
                  batch_runs: int = BATCH_RUNS) -> tuple[list[np.ndarray], list[float], list[np.ndarray]]:
    """:func:`run_checks` of the reference and of the wrong answers with the seeds split into ``workers``
    contiguous chunks, one fresh process each (spawned: no state shared); merged in seed order, so the
    result equals the serial one."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm import tqdm

    cut = lambda xs: [_part(xs, i, workers) for i in range(workers)]  # noqa: E731
    tasks = [(name, dict(tol), a, b, course, only, batch_runs) for a, b in zip(cut(seeds), cut(power_seeds))]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        parts = list(tqdm(pool.map(_chunk, tasks), total=len(tasks), desc=f"{name} in {workers} processes",
                          disable=not progress, leave=False))
    join = lambda k: [np.asarray(sum((p[k][i] for p in parts), []), dtype=float)  # noqa: E731
                      for i in range(len(parts[0][k]))]
    return join(0), [sum(p[1][i] for p in parts) for i in range(len(parts[0][1]))], join(2)


def calibrate(name: str, runs: int = MIN_CALIBRATION_RUNS, *, out: str | Path | None = None,
              first_seed: int = 10_000, power_runs: int = 30, budget: float | None = None, workers: int = 1,
              progress: bool = True, only: Collection[str] | None = None,
              batch_runs: int = BATCH_RUNS) -> list[CheckReport]:
    """:func:`sweep` with ``runs`` (>= 300) seeds and the power study; writes ``out`` (JSON).

    ``out`` default: ``course/<name>/calibration.json``.
    ``only``: calibrate just these hidden tests (a new one, or one whose statistic or reference changed)
    at the seeds of the stored file, whose ``runs`` and ``first_seed`` are then used, and keep the other
    checks' stored runs (their summaries refitted); the same file as a full run where the others are unchanged.
    ``power_runs``: runs per wrong answer; its fail probability is the smaller of the observed
    fraction and that of a normal fitted to the runs (30 runs all failing show >= 0.905 at 95% by
    themselves; the fitted tail is what shows >= 0.99).
    ``batch_runs``: seeds per call of a check's ``batched`` statistic (:func:`run_checks`; the same values).
    """
    if runs < MIN_CALIBRATION_RUNS:
        raise ValueError(f"calibration needs >= {MIN_CALIBRATION_RUNS} runs, got {runs}")
    from gradkit_tools.course import assignment

    path = Path(out) if out is not None else assignment(name).calibration_file
    stored = json.loads(assignment(name).calibration_file.read_text()) if only is not None else None
    if stored is not None:
        runs, first_seed = stored["runs"], stored["first_seed"]
    reports = sweep(name, runs, first_seed=first_seed, budget=budget, power_runs=power_runs, workers=workers,
                    progress=progress, only=only, batch_runs=batch_runs)
    reports = _keep_stored(name, reports, stored)
    _write(path, name, runs, first_seed, reports)
    return reports
