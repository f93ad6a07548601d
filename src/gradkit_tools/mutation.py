"""Mutation testing of an assignment's autograder: grade every mutant of every solution stub.

Each mutant of :mod:`gradkit_tools.mutants` replaces one stub's solution; the notebook's other answers stay the
master's. The screen runs the hidden tests of the stub's question in this process (the set-up is the answer
catalogue's ``prelude:``, forbidden calls apply as in grading) and records which fail. A mutant that loses
no point on its question *survives*: either it is equivalent to the solution (listed, with a one-line
argument, in ``course/<name>/mutants.yml``) or the hidden tests have a gap. The banded (stochastic) tests
train networks; the screen runs them only for mutants the exact tests leave alive, and only with
``bands=True``.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from gradkit_tools import master as master_reader
from gradkit_tools.answers import prelude
from gradkit_tools.course import assignment, forbidden
from gradkit_tools.mutants import Mutant, mutants

__all__ = ["Outcome", "StubScore", "equivalents", "screen", "scores", "format_scores", "record", "recorded", "run"]


@dataclass
class Outcome:
    """What the hidden tests did to one mutant: ``killed_by`` the failing tests (empty: it survived)."""

    mutant: Mutant
    question: str
    killed_by: dict[str, str] = field(default_factory=dict)
    equivalent: str | None = None  # the argument from mutants.yml, when listed
    not_graded: str | None = None  # mutants.yml's reason, when it changes only an ungraded clause

    @property
    def status(self) -> str:
        if self.killed_by:
            return "killed"
        if self.equivalent:
            return "equivalent"
        return "not graded" if self.not_graded else "survived"


@dataclass
class StubScore:
    """Per stub: mutants, killed, equivalent, changing only ungraded clauses, and the surviving gaps (their ids)."""

    function: str
    mutants: int = 0
    killed: int = 0
    equivalent: int = 0
    not_graded: int = 0
    survivors: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Killed over the mutants that are neither equivalent nor change only ungraded clauses (1.0: none)."""
        live = self.mutants - self.equivalent - self.not_graded
        return 1.0 if live == 0 else self.killed / live


def equivalents(name: str, kind: str = "equivalent") -> dict[str, str]:
    """``{mutant id: one-line argument}`` from ``course/<name>/mutants.yml``: under ``equivalent:`` the mutants
    that compute what the solution computes; under ``not_graded:`` (``kind="not_graded"``) those that change
    only what a clause marked not graded in ``clauses.yml`` specifies."""
    path = assignment(name).folder / "mutants.yml"
    if not path.exists():
        return {}
    doc = yaml.safe_load(path.read_text()) or {}
    out = doc.get(kind) or {}
    if not isinstance(out, dict) or not all(isinstance(v, str) and v.strip() for v in out.values()):
        raise ValueError(f"{path}: `{kind}:` must map mutant ids to a one-line reason each")
    return out


def _run(fn: Callable, ns: dict) -> str | None:
    """None when ``fn`` passes with its parameters looked up in ``ns``, else why it failed."""
    import inspect

    try:
        fn(*[ns.get(p) for p in inspect.signature(fn).parameters])
    except AssertionError as exc:
        return (str(exc) or "AssertionError").splitlines()[0][:200]
    except Exception as exc:  # noqa: BLE001 - a test that errors is a lost point too
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def screen(name: str, *, functions: list[str] | None = None, bands: bool = False,
           progress: bool = True) -> list[Outcome]:
    """Grade every mutant of the stubs of assignment ``name`` with its question's hidden tests.

    Parameters
    ----------
    name : str
        Assignment (``course/<name>/``).
    functions : list of str, optional
        Only the mutants of these stubs.
    bands : bool
        Also run the banded tests on mutants the exact tests leave alive (trains networks: minutes each).
    progress : bool
        A progress bar on stderr.

    Returns
    -------
    list of Outcome, one per mutant.
    """
    from gradkit_grader.bands import clear_memo

    a = assignment(name)
    solutions = {q: "".join(master_reader.strip_solution_marks(c) + "\n" for c in cells)
                 for q, cells in master_reader.solution_code(a.master).items()}
    cells = master_reader.test_cells(a.master)
    tests = {t: (c.question, master_reader.cell_function(c.source)) for t, c in cells.items() if c.hidden}
    is_band = {t: master_reader.band_test(t) != t for t in tests}
    known, ungraded = equivalents(name), equivalents(name, "not_graded")
    rules = forbidden(name)
    exact = {q for t, (q, _) in tests.items() if not is_band[t]}
    # without the bands, a question whose hidden tests are all banded cannot be judged: its mutants are skipped
    work = [(q, m) for q, src in solutions.items() if bands or q in exact for m in mutants(src, functions)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(work), desc=f"mutants of {name}", file=sys.stderr)
    out = []
    for q, m in work:
        code = "\n".join([prelude(a), *(m.source if p == q else s for p, s in solutions.items())])
        outcome = Outcome(m, q, equivalent=known.get(m.id), not_graded=ungraded.get(m.id))
        ns: dict[str, Any] = {"__name__": "__main__"}
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # seed notes, bars
            _grade(outcome, code, ns, tests, q, is_band, bands, rules)
        clear_memo()
        out.append(outcome)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return out


def _grade(outcome: Outcome, code: str, ns: dict, tests: dict, q: str, is_band: dict, bands: bool,
           rules: dict) -> None:
    """Run the mutant's notebook ``code`` into ``ns``, then question ``q``'s hidden tests until one fails."""
    from gradkit.forbid import forbidding
    from gradkit_grader.bands import clear_memo

    try:
        exec(compile(code, f"<mutant {outcome.mutant.id}>", "exec"), ns)
    except Exception as exc:  # noqa: BLE001 - a notebook that fails to run scores zero
        outcome.killed_by["(notebook)"] = f"{type(exc).__name__}: {exc}"[:200]
    for band_pass in (False, True):
        if outcome.killed_by or (band_pass and not bands):
            return
        with forbidding(rules):
            for t, (tq, fn) in tests.items():
                if tq == q and is_band[t] == band_pass:
                    clear_memo()
                    why = _run(fn, ns)
                    if why is not None:
                        outcome.killed_by[t] = why
                        return


def scores(outcomes: list[Outcome]) -> dict[str, StubScore]:
    """Per stub, in order of appearance."""
    out: dict[str, StubScore] = {}
    for o in outcomes:
        s = out.setdefault(o.mutant.function, StubScore(o.mutant.function))
        s.mutants += 1
        if o.status == "killed":
            s.killed += 1
        elif o.status == "equivalent":
            s.equivalent += 1
        elif o.status == "not graded":
            s.not_graded += 1
        else:
            s.survivors.append(o.mutant.id)
    return out


def format_scores(name: str, outcomes: list[Outcome], *, seconds: float | None = None) -> str:
    """A table per stub (mutants, killed, equivalent, survivors, score) and the surviving ids."""
    rows = [f"{name}: mutation score per stub" + (f" ({seconds:.0f} s)" if seconds is not None else ""),
            f"{'stub':<26}{'mutants':>8}{'killed':>8}{'equiv.':>8}{'ungraded':>9}{'survive':>8}{'score':>8}"]
    for s in scores(outcomes).values():
        rows.append(f"{s.function:<26}{s.mutants:>8}{s.killed:>8}{s.equivalent:>8}{s.not_graded:>9}"
                    f"{len(s.survivors):>8}{s.score:>8.0%}")
    for o in outcomes:
        if o.status == "survived":
            rows.append(f"  survivor {o.mutant.id}")
    stale = [o.mutant.id for o in outcomes if o.killed_by and (o.equivalent or o.not_graded)]
    rows += [f"  listed in mutants.yml but killed: {i}" for i in stale]
    return "\n".join(rows)


def run(name: str, **kwargs: Any) -> tuple[list[Outcome], str]:
    """:func:`screen` and its table."""
    t = time.perf_counter()
    outcomes = screen(name, **kwargs)
    return outcomes, format_scores(name, outcomes, seconds=time.perf_counter() - t)


def recorded(name: str) -> dict[str, dict]:
    """``{stub: {screen, mutants, killed, equivalent, survivors}}`` from ``course/<name>/mutation.json``."""
    path = assignment(name).folder / "mutation.json"
    return json.loads(path.read_text())["stubs"] if path.is_file() else {}


def record(name: str, outcomes: list[Outcome], *, bands: bool) -> Path:
    """Write the screen's figures per stub into ``course/<name>/mutation.json`` (generated: ``gradkit mutate
    --write``); stubs this screen did not reach keep their figures. No timestamps: the same screen writes the
    same bytes."""
    path = assignment(name).folder / "mutation.json"
    stubs = recorded(name)
    for stub, sc in scores(outcomes).items():
        stubs[stub] = {"screen": "exact + bands" if bands else "exact", "mutants": sc.mutants, "killed": sc.killed,
                       "equivalent": sc.equivalent, "not_graded": sc.not_graded, "survivors": sc.survivors}
    doc = {"assignment": name, "generated_by": "gradkit mutate --write", "stubs": stubs}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path
