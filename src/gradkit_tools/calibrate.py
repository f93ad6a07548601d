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

The parts: :mod:`gradkit_tools.calchecks` (the checks, budgets and wrong answers of an assignment),
:mod:`gradkit_tools.calruns` (running them under many seeds, batched, in processes),
:mod:`gradkit_tools.calreport` (a check's runs against its bound) and :mod:`gradkit_tools.calfile`
(the calibration file: refit, power study, shards); this module re-exports their public names, the
calibration API the CLI, tests and benchmarks use.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

from gradkit_tools.calchecks import budgets, checks_of, selected, wrong_answers
from gradkit_tools.calfile import (
    calibrate_shard,
    calibration_problems,
    keep_stored,
    merge_shards,
    refit,
    repower,
    write_calibration,
)
from gradkit_tools.calreport import (
    DEFAULT_BUDGET,
    MIN_CALIBRATION_RUNS,
    MIN_POWER,
    CheckReport,
    format_reports,
    reports_of,
    summarize,
)
from gradkit_tools.calruns import BATCH_RUNS, in_processes, run_check, run_checks, spread_seeds

__all__ = ["CheckReport", "checks_of", "budgets", "spread_seeds", "run_check", "run_checks", "summarize", "sweep",
           "calibrate", "refit", "repower", "wrong_answers", "calibration_problems", "format_reports", "DEFAULT_BUDGET",
           "MIN_CALIBRATION_RUNS", "BATCH_RUNS", "MIN_POWER", "calibrate_shard", "merge_shards"]


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
    jobs = [(check, check.reference(tol)) for check in selected(all_checks, only)]
    wrong = [w for w in wrong_answers(name, course) if only is None or w[0].test in only] if power_runs else []
    power_seeds = seed_list[:power_runs] if power_runs and wrong else []
    if workers > 1:
        values, seconds, wrong_values = in_processes(name, tol, seed_list, power_seeds, workers, progress, course,
                                                      only, batch_runs)
    else:
        with tqdm(total=len(seed_list), desc=f"{name} reference", disable=not progress, leave=False) as bar:
            values, seconds = run_checks(jobs, tol, seed_list, progress=bar.update, batch_runs=batch_runs)
        with tqdm(total=len(power_seeds), desc=f"{name} wrong answers", disable=not progress or not power_seeds,
                  leave=False) as bar:
            wrong_values, _ = run_checks([(c, comps) for c, _, comps in wrong], tol, power_seeds, progress=bar.update,
                                         batch_runs=batch_runs)
    return reports_of(name, tol, [c for c, _ in jobs], values, seconds, wrong, wrong_values, budget=budget,
                      declared=declared, all_checks=all_checks, power=bool(power_runs))


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
    reports = keep_stored(name, reports, stored)
    write_calibration(path, name, runs, first_seed, reports)
    return reports
