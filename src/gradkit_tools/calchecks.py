"""What a calibration runs: an assignment's stochastic checks, their false-fail budgets, and the wrong
answers that measure their power.

A check (:class:`gradkit_grader.statistic.Check`) is listed in ``CHECKS`` of the assignment's
``statistics.py``; its budget is declared under ``budgets:`` of its ``tolerances.yml``; its wrong answers
are the entries of ``answers.yml`` marked ``power: true`` whose ``fails:`` name its hidden test.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Sequence

from gradkit_grader.statistic import Check
from gradkit_tools.calreport import DEFAULT_BUDGET

__all__ = ["checks_of", "selected", "budgets", "wrong_answers"]


def checks_of(name: str, course: str | Path | None = None) -> tuple[Check, ...]:
    """The :class:`Check` tuple of assignment ``name`` (``CHECKS`` of its ``statistics.py``)."""
    from gradkit_tools.course import assignment, statistics_module

    a = assignment(name, course)
    if not a.statistics_file.is_file():
        raise ValueError(f"no stochastic checks for {name!r}: {a.statistics_file} is missing")
    return tuple(statistics_module(a).CHECKS)


def selected(checks: Sequence[Check], only: Collection[str] | None) -> list[Check]:
    """The checks of the hidden tests ``only`` (all of them for None); an unknown test name is an error."""
    if only is None:
        return list(checks)
    unknown = sorted(set(only) - {c.test for c in checks})
    if unknown:
        raise ValueError(f"no stochastic hidden test {', '.join(unknown)}; known: "
                         f"{', '.join(sorted({c.test for c in checks}))}")
    return [c for c in checks if c.test in only]


def budgets(name: str, course: str | Path | None = None) -> dict[str, dict]:
    """``{test: {"budget": float, "method": "exact" | "empirical"}}`` of assignment ``name``
    (``budgets:`` of its tolerances.yml); every check of :func:`checks_of` must have one, within
    :data:`gradkit_tools.calreport.DEFAULT_BUDGET`."""
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
