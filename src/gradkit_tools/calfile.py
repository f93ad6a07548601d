"""The calibration file ``course/<name>/calibration.json``: refit, power study, checks, and shards.

What :mod:`gradkit_tools.calibrate` does to a calibration file once the runs are made: :func:`refit`
(``gradkit calibrate --refit``), :func:`repower` (``--power-only``), :func:`calibration_problems`
(what the tests demand of the committed file), and the sharded calibration of a cluster:
:func:`calibrate_shard` (``gradkit calibrate NAME --shard K/N -o part.json``) runs the seeds of slice K
of N -- the slice :func:`gradkit_tools.calruns.in_processes` gives its K-th process -- and
:func:`merge_shards` (``gradkit calibrate NAME --merge part*.json``) joins the parts in seed order and
writes what one process would, byte for byte. The file holds no timings (time measured while running
differs in every run); ``seconds`` of a :class:`CheckReport` is that run's, printed by
:func:`gradkit_tools.calreport.format_reports`, and NaN for a report refitted from the file.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from gradkit_grader.statistic import Check
from gradkit_tools.calchecks import budgets, checks_of, selected, wrong_answers
from gradkit_tools.calreport import (
    MIN_CALIBRATION_RUNS,
    MIN_POWER,
    CheckReport,
    budget_share,
    power_entry,
    reports_of,
    summarize,
)
from gradkit_tools.calruns import run_checks, run_slice, slice_of, spread_seeds

__all__ = ["refit", "repower", "calibration_problems", "calibrate_shard", "merge_shards", "keep_stored",
           "write_calibration", "SHARD_KIND"]

SHARD_KIND = "gradkit calibrate --shard"  # the "kind" of a shard's file; merge_shards reads no other


def _stored_report(check: Check, doc: Mapping, tol: Mapping[str, Any], declared: Mapping, all_checks: Sequence[Check],
                   name: str) -> CheckReport:
    """``check``'s summary refitted from the runs stored in the calibration file ``doc`` (power kept)."""
    key = f"{check.test}:{check.name}"
    if key not in doc["checks"]:
        raise ValueError(f"{name}'s calibration file has no runs of {key}: calibrate {check.test} too")
    old = doc["checks"][key]
    if len(old["values"]) != old["runs"]:
        raise ValueError(f"{name}: {check.test} stores {len(old['values'])} of its {old['runs']} runs; "
                         f"run `gradkit calibrate {name}` again")
    share = budget_share(declared[check.test]["budget"], check, all_checks)
    rep = summarize(check, name, tol, np.asarray(old["values"], dtype=float), float("nan"), share)
    rep.method, rep.power = declared[check.test]["method"], old["power"]
    return rep


def refit(name: str, path: str | Path | None = None, *, out: str | Path | None = None) -> list[CheckReport]:
    """Summaries of a calibration file's stored runs recomputed with the current bounds, budgets and tail
    fits (no new runs; ``gradkit calibrate --refit``). The power entries are kept as they are."""
    from gradkit_tools.course import assignment, tolerances

    path = Path(path) if path is not None else assignment(name).calibration_file
    doc, tol, declared = json.loads(path.read_text()), tolerances(name), budgets(name)
    all_checks = checks_of(name)
    reports = [_stored_report(check, doc, tol, declared, all_checks, name) for check in all_checks]
    write_calibration(Path(out) if out is not None else path, name, doc["runs"], doc["first_seed"], reports)
    return reports


def repower(name: str, path: str | Path | None = None, *, power_runs: int = 30, out: str | Path | None = None,
            progress: bool = True) -> list[CheckReport]:
    """A calibration file's power study run again with the catalogue's current wrong answers, at the
    seeds the calibration drew first; the stored reference runs and their summaries are kept
    (``gradkit calibrate --power-only``: after a wrong answer was added to answers.yml)."""
    from tqdm import tqdm

    from gradkit_tools.course import assignment, tolerances

    path = Path(path) if path is not None else assignment(name).calibration_file
    doc, tol = json.loads(path.read_text()), tolerances(name)
    seeds = spread_seeds(doc["runs"], doc["first_seed"])[:power_runs]
    wrong = wrong_answers(name)
    with tqdm(total=len(seeds), desc=f"{name} wrong answers", disable=not progress, leave=False) as bar:
        values, _ = run_checks([(c, comps) for c, _, comps in wrong], tol, seeds, progress=bar.update)
    reports = refit(name, path, out=out)
    for rep in reports:
        rep.power = {label: power_entry(c, tol, v) for (c, label, _), v in zip(wrong, values)
                     if f"{c.test}:{c.name}" == f"{rep.test}:{rep.name}"}
    write_calibration(Path(out) if out is not None else path, name, doc["runs"], doc["first_seed"], reports)
    return reports


#: report fields the file leaves out: the assignment is the file's; the seconds differ in every run
_NOT_STORED = ("assignment", "seconds")


def write_calibration(path: Path, name: str, runs: int, first_seed: int, reports: Sequence[CheckReport]) -> None:
    """Write ``reports`` (every run's value, the summaries, the power entries; no timings) to ``path`` as
    JSON with sorted keys, so the same runs give the same bytes; when ``path`` is the assignment's
    calibration file, regenerate the calibration section of its NOTES.md from it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"assignment": name, "runs": runs, "first_seed": first_seed,
           "checks": {f"{r.test}:{r.name}": {k: v for k, v in asdict(r).items() if k not in _NOT_STORED}
                      for r in reports}}
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, allow_nan=True) + "\n")
    from gradkit_tools import calnotes
    from gradkit_tools.course import assignment

    a = assignment(name)
    if path.resolve() == a.calibration_file.resolve() and a.notes_file.is_file():
        calnotes.write(a.notes_file, path)  # NOTES.md quotes the figures from this file only


def calibration_problems(name: str, course: str | Path | None = None, path: str | Path | None = None) -> list[str]:
    """What is wrong with ``course/<name>/calibration.json`` against the current tolerances ([] when nothing).

    The file must hold every check of :func:`checks_of` with at least :data:`MIN_CALIBRATION_RUNS`
    runs, computed at the bounds tolerances.yml has now (a changed bound needs a new calibration), no
    false fail, the fitted tail of an empirical bound within the test's share of its budget, and every
    wrong answer of the check failing the full-credit bound with probability >= 0.99.
    """
    from gradkit_tools.course import assignment, tolerances

    path = Path(path) if path is not None else assignment(name, course).calibration_file
    if not path.exists():
        return [f"{path} is missing: run `gradkit calibrate {name}`"]
    doc, tol, declared = json.loads(path.read_text()), tolerances(name, course), budgets(name, course)
    problems, recorded = [], doc.get("checks", {})
    all_checks = checks_of(name, course)
    wrong = wrong_answers(name, course)
    for check in all_checks:
        key, rep = f"{check.test}:{check.name}", recorded.get(f"{check.test}:{check.name}")
        if rep is None:
            problems.append(f"{key}: not in {path.name}")
            continue
        share = budget_share(declared[check.test]["budget"], check, all_checks)
        if rep["runs"] < MIN_CALIBRATION_RUNS:
            problems.append(f"{key}: {rep['runs']} runs < {MIN_CALIBRATION_RUNS}")
        if rep["bound"] != float(tol[check.full]) or rep["zero"] != (float(tol[check.zero]) if check.zero else None):
            problems.append(f"{key}: calibrated at bounds {rep['bound']} / {rep['zero']}, tolerances.yml has "
                            f"{tol[check.full]} / {tol[check.zero] if check.zero else None}: re-run gradkit calibrate")
        if rep["false_fails"]:
            problems.append(f"{key}: {rep['false_fails']} of {rep['runs']} reference runs fail the bound")
        if rep["method"] != declared[check.test]["method"]:
            problems.append(f"{key}: calibrated as {rep['method']}, "
                            f"tolerances.yml says {declared[check.test]['method']}")
        elif rep["method"] == "empirical" and not rep["tail_prob"] <= share:
            problems.append(f"{key}: fitted P(fail) {rep['tail_prob']:.2g} exceeds the budget share {share:.2g}")
        labels = [label for c, label, _ in wrong if c is check]
        if not labels:
            problems.append(f"{key}: no wrong answer of answers.yml with power: true lists {check.test} "
                            "under fails:, so nothing measures its power")
        for label in labels:
            power = rep.get("power", {}).get(label)
            if power is None or power["fail_prob"] < MIN_POWER:
                problems.append(f"{key}: wrong answer {label!r} fails with probability "
                                f"{'unmeasured' if power is None else format(power['fail_prob'], '.3f')} < 0.99: "
                                f"run `gradkit calibrate {name} --power-only`")
    return problems


def keep_stored(name: str, reports: list[CheckReport], stored: Mapping | None) -> list[CheckReport]:
    """``calibrate(only=...)``'s file: the fresh ``reports``, and every other check of the assignment
    refitted from the stored calibration file ``stored`` (``reports`` as they are when None)."""
    if stored is None:
        return reports
    from gradkit_tools.course import tolerances

    fresh = {f"{r.test}:{r.name}": r for r in reports}
    tol, declared, all_checks = tolerances(name), budgets(name), checks_of(name)
    return [fresh.get(f"{c.test}:{c.name}") or _stored_report(c, stored, tol, declared, all_checks, name)
            for c in all_checks]


def _plan(name: str, runs: int, first_seed: int, power_runs: int, only: Collection[str] | None) -> dict:
    """What ``calibrate(name, runs, ...)`` runs: its settings (``only``: the stored file's runs and
    first seed), checks, wrong answers, seeds and power seeds, as :func:`gradkit_tools.calibrate.sweep`
    draws them."""
    from gradkit_tools.course import assignment, tolerances

    if runs < MIN_CALIBRATION_RUNS:
        raise ValueError(f"calibration needs >= {MIN_CALIBRATION_RUNS} runs, got {runs}")
    stored = json.loads(assignment(name).calibration_file.read_text()) if only is not None else None
    if stored is not None:
        runs, first_seed = stored["runs"], stored["first_seed"]
    all_checks = checks_of(name)
    checks = selected(all_checks, only)
    wrong = [w for w in wrong_answers(name) if only is None or w[0].test in only] if power_runs else []
    seeds = spread_seeds(runs, first_seed)
    return {"runs": runs, "first_seed": first_seed, "stored": stored, "tol": tolerances(name),
            "all_checks": all_checks, "checks": checks, "wrong": wrong, "seeds": seeds,
            "power_seeds": seeds[:power_runs] if power_runs and wrong else []}


def _shard(shard: str | Sequence[int]) -> tuple[int, int]:
    from gradkit_tools.grade import parse_shard
    from gradkit_tools.gradecsv import GradeError

    try:
        return parse_shard(shard)
    except GradeError as exc:
        raise ValueError(str(exc)) from None


def calibrate_shard(name: str, shard: str | Sequence[int], out: str | Path, runs: int = 300, *,
                    first_seed: int = 10_000, power_runs: int = 30, budget: float | None = None,
                    only: Collection[str] | None = None) -> Path:
    """Slice ``shard`` ("K/N") of ``calibrate(name, runs, ...)``'s runs, written to ``out`` (JSON) for
    :func:`merge_shards`: the reference runs of the K-th of N contiguous slices of its seeds and the
    wrong answers' runs of the K-th slice of its power seeds (the arguments mean what they mean to
    :func:`gradkit_tools.calibrate.calibrate`; ``runs`` >= 300)."""

    k, n = _shard(shard)
    plan = _plan(name, runs, first_seed, power_runs, only)
    seeds, power_seeds = slice_of(plan["seeds"], k - 1, n), slice_of(plan["power_seeds"], k - 1, n)
    values, seconds, wrong_values = run_slice((name, dict(plan["tol"]), seeds, power_seeds, None, only))
    doc = {"kind": SHARD_KIND, "assignment": name, "shard": [k, n], "runs": plan["runs"],
           "first_seed": plan["first_seed"], "power_runs": power_runs, "budget": budget,
           "only": sorted(only) if only is not None else None,
           "checks": [f"{c.test}:{c.name}" for c in plan["checks"]],
           "wrong": [f"{c.test}:{c.name} {label}" for c, label, _ in plan["wrong"]],
           "seeds": seeds, "power_seeds": power_seeds, "values": values, "seconds": seconds,
           "wrong_values": wrong_values}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, allow_nan=True) + "\n")
    return out


_SAME = ("assignment", "runs", "first_seed", "power_runs", "budget", "only", "checks", "wrong")


def merge_shards(parts: Sequence[str | Path], out: str | Path | None = None, *,
                 name: str | None = None) -> list[CheckReport]:
    """Join the files of ``calibrate_shard`` for shards 1..N of one calibration and write ``out``
    (default ``course/<name>/calibration.json``) as ``calibrate`` would have.

    Raises
    ------
    ValueError
        A file is not a shard's, the shards disagree on a setting, one is missing or given twice,
        ``name`` is not their assignment, or the course's checks, wrong answers or seeds are no longer
        those the shards ran.
    """
    from gradkit_tools.course import assignment

    docs: dict[int, dict] = {}
    first: tuple[Path, dict] | None = None
    for path in map(Path, parts):
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or doc.get("kind") != SHARD_KIND:
            raise ValueError(f"{path} is not a file of `gradkit calibrate --shard`")
        if first is None:
            first = (path, doc)
        for key in (*_SAME, "n"):
            mine, theirs = (d["shard"][1] if key == "n" else d[key] for d in (doc, first[1]))
            if mine != theirs:
                raise ValueError(f"{path} has {key} {mine!r}, {first[0]} has {theirs!r}: not shards of one calibration")
        k = doc["shard"][0]
        if k in docs:
            raise ValueError(f"{path}: shard {k}/{doc['shard'][1]} given twice")
        docs[k] = doc
    if first is None:
        raise ValueError("no shard files to merge")
    head = first[1]
    n = head["shard"][1]
    missing = sorted(set(range(1, n + 1)) - set(docs))
    if missing:
        raise ValueError(f"shard(s) {', '.join(f'{k}/{n}' for k in missing)} missing: merge needs all {n}")
    if name is not None and name != head["assignment"]:
        raise ValueError(f"the shards calibrate {head['assignment']}, not {name}")
    name, only = head["assignment"], head["only"]
    plan = _plan(name, head["runs"], head["first_seed"], head["power_runs"], only)
    now = {"checks": [f"{c.test}:{c.name}" for c in plan["checks"]],
           "wrong": [f"{c.test}:{c.name} {label}" for c, label, _ in plan["wrong"]],
           "seeds": plan["seeds"], "power_seeds": plan["power_seeds"]}
    ordered = [docs[k] for k in range(1, n + 1)]
    for key, want in now.items():
        got = sum((d[key] for d in ordered), []) if key.endswith("seeds") else head[key]
        if got != want:
            raise ValueError(f"the course's {key} differ from those the shards of {name} ran: run them again")
    join = lambda key, i: np.asarray(sum((d[key][i] for d in ordered), []), dtype=float)  # noqa: E731
    values = [join("values", i) for i in range(len(plan["checks"]))]
    seconds = [sum(d["seconds"][i] for d in ordered) for i in range(len(plan["checks"]))]
    wrong_values = [join("wrong_values", i) for i in range(len(plan["wrong"]))]
    budget = head["budget"]
    reports = reports_of(name, plan["tol"], plan["checks"], values, seconds, plan["wrong"], wrong_values,
                         budget=budget, declared=budgets(name) if budget is None else {},
                         all_checks=plan["all_checks"], power=bool(head["power_runs"]))
    reports = keep_stored(name, reports, plan["stored"])
    path = Path(out) if out is not None else assignment(name).calibration_file
    write_calibration(path, name, plan["runs"], plan["first_seed"], reports)
    return reports
