"""Shared harness for the assignment tests (test_a1_clipping ... test_a4_resnet).

An Otter master notebook (``course/<name>/<name>.ipynb``) is read into its parts, the test cells
are run outside otter against the solution or a student's variant, and the real otter CLI is run
end to end. Everything that differs between assignments (the master, the prelude a student
notebook defines, otter's time limit and environment) is a parameter.

The master format: raw cells ``# BEGIN QUESTION`` (followed by the question's YAML config),
``# BEGIN SOLUTION`` / ``# END SOLUTION``, ``# BEGIN TESTS`` / ``# END TESTS``, ``# END QUESTION``;
each test cell starts with a ``# BEGIN TEST CONFIG`` ... ``# END TEST CONFIG`` header (a YAML
string: ``hidden``, ``points``), defines one ``test_...`` function and ends with the line calling it.

No name here starts with ``test``: the test modules import them, and pytest would collect them.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from gradkit_tools import master as master_reader
from gradkit_tools.answers import run_as_cell

ROOT = Path(__file__).resolve().parents[1]


def master_path(name: str) -> Path:
    """The master notebook of assignment ``name``: ``course/<name>/<name>.ipynb``."""
    return ROOT / "course" / name / f"{name}.ipynb"


# --------------------------------------------------------------------------- master parsing

def master_parts(master: Path, *, markdown_answers: bool = False):
    """The parts of a master notebook (read by :mod:`gradkit_tools.master`), as three dicts.

    ``({question: config}, {question: solution source}, {test name: (question, hidden, points, source)})``.

    A question's solution is its solution-block code cells, concatenated (each followed by a newline).
    With ``markdown_answers``, markdown cells in a solution block (a manual question's written
    answer) are part of the solution too; otherwise only code counts.
    """
    solutions = {q: "".join(src + "\n" for src in cells)
                 for q, cells in master_reader.solution_code(master, markdown=markdown_answers).items()}
    tests = {name: (t.question, t.hidden, t.points, t.source) for name, t in master_reader.test_cells(master).items()}
    return master_reader.questions(master), solutions, tests


def setup_source(master: Path, marker: str = "from gradkit import"):
    """The master's set-up cell: the first code cell outside solution and test blocks containing ``marker``;
    None when there is none."""
    return next((c.source for c in master_reader.walk(master)
                 if c.kind == "code" and c.block is None and marker in c.source), None)


# --------------------------------------------------------------------------- running test cells

def cell_test(src: str):
    """The test function of a test cell, without the cell's own call line (the cell is not run)."""
    return master_reader.cell_function(src)


def compiled_tests(tests: dict) -> dict:
    """``tests`` with each entry's last item (the test cell's source) replaced by its test function."""
    return {name: (*entry[:-1], cell_test(entry[-1])) for name, entry in tests.items()}


def namespace(prelude: str, *sources: str) -> dict:
    """The globals after running ``prelude`` followed by ``sources`` (joined by newlines): what a
    student notebook defines. ``prelude`` stands for the notebook's set-up (imports, constants).

    The code is run as a notebook cell (:func:`gradkit_tools.answers.run_as_cell`, named by its digest), so its
    functions' seeds come from their source text, as in the graded notebook (tests/test_seeding.py)."""
    code = prelude + "\n".join(sources)
    return run_as_cell(code, f"<student code {hashlib.sha256(code.encode()).hexdigest()[:16]}>")


def run_test(test_fn, ns: dict):
    """Call ``test_fn`` with its parameters looked up by name in ``ns`` (None where undefined).

    None when the test passes, else the AssertionError's message. Other exceptions propagate.
    """
    args = [ns.get(p) for p in inspect.signature(test_fn).parameters]
    try:
        test_fn(*args)
    except AssertionError as exc:
        return str(exc) or "AssertionError"
    return None


def failures(tests: dict, names, ns: dict) -> dict:
    """``{test name: message}`` of the tests in ``names`` (in that order) that fail on ``ns``."""
    return {n: m for n in names if (m := run_test(tests[n][3], ns)) is not None}


def band_case_test(case: str) -> str:
    """The test a case belongs to: a banded case ``<test>_band_<k>`` counts as ``<test>``."""
    return master_reader.band_test(case)


def failed_by_test(tests: dict, names, ns: dict) -> dict:
    """``{test (band cases merged): [messages]}`` of the tests in ``names`` that fail on ``ns``."""
    out: dict = {}
    for case, msg in failures(tests, names, ns).items():
        out.setdefault(band_case_test(case), []).append(msg)
    return out


def assert_band_cases(tests: dict, checks, band_steps: int) -> dict:
    """Each check of ``checks`` (gradkit_grader.statistic) is a banded test: ``band_steps`` hidden cases
    ``<test>_band_<k>`` of equal points, case k asserting band step k between the check's two bounds on
    its statistic. Returns ``{check.test: {case name: tests entry}}`` for further assertions."""
    out = {}
    for check in checks:
        cases = {n: e for n, e in tests.items() if band_case_test(n) == check.test}
        assert sorted(cases) == [f"{check.test}_band_{k}" for k in range(1, band_steps + 1)], check.test
        assert len({e[2] for e in cases.values()}) == 1, f"{check.test}: band cases need equal points"
        for n, (_, hidden, _, src) in cases.items():
            k = int(n.rsplit("_", 1)[1])
            assert hidden and f"assert_band_step(\n        value, {k}, {band_steps}," in src, n
            assert f'tol["{check.full}"]' in src and f'tol["{check.zero}"]' in src, n
            assert f"{check.statistic.__name__}(" in src, n
        out[check.test] = cases
    return out


def solution_passes(tests: dict, names, ns: dict) -> dict:
    """Run the tests ``names`` on ``ns`` (the solution's namespace); each must pass. Prints and returns
    ``{name: seconds}``: speed is judged by ``benchmarks/bench_hidden.py``, never asserted in a test."""
    times = {}
    for name in names:
        t0 = time.perf_counter()
        message = run_test(tests[name][3], ns)
        times[name] = round(time.perf_counter() - t0, 2)
        assert message is None, f"{name} fails on the solution: {message}"
    print(f"\nseconds per test: {times}; hidden total {sum(t for n, t in times.items() if tests[n][1]):.1f} s")
    return times


def sweep_base_seeds(monkeypatch, tests: dict, hidden, ns: dict, bases) -> None:
    """Every test of ``hidden`` passes on ``ns`` under each base seed of ``bases`` (tolerances.yml's
    ``seed`` replaced through ``gradkit_tools.course.tolerances``; memoized statistics forgotten per seed)."""
    import gradkit_tools.course
    from gradkit_grader.bands import clear_memo

    real = gradkit_tools.course.tolerances
    report, passed = [], 0
    for base in bases:
        monkeypatch.setattr(gradkit_tools.course, "tolerances",
                            lambda name, *a, _b=base, **kw: {**real(name, *a, **kw), "seed": _b})
        clear_memo()
        t0 = time.perf_counter()
        failed = failures(tests, hidden, ns)
        passed += not failed
        report.append(f"base seed {base}: {'ok' if not failed else failed} ({time.perf_counter() - t0:.0f} s)")
    clear_memo()
    print("\n" + "\n".join(report))
    assert passed == len(bases), f"{passed}/{len(bases)} base seeds pass:\n" + "\n".join(report)


def assert_fails_exactly(tests: dict, names, ns: dict, must_fail: set, variant: str) -> dict:
    """Run ``names`` on ``ns``; exactly ``must_fail`` may fail. Returns the failures' messages."""
    failed = failures(tests, names, ns)
    assert set(failed) == must_fail, f"{variant}: failed {sorted(failed)}, expected {sorted(must_fail)}: {failed}"
    return failed


# --------------------------------------------------------------------------- the catalogue of answers

def catalogue_answers(name: str, questions=None) -> list[str]:
    """Names of the right and wrong answers of ``course/<name>/answers.yml`` that are answer code
    (no file-level entries), editing only ``questions`` (all when None); sorted."""
    from gradkit_tools.answers import entries
    from gradkit_tools.course import assignment

    out = []
    for key, e in entries(assignment(name)).items():
        if e["kind"] not in ("correct", "wrong") or set(e) & {"raw", "zip", "extra_cells", "drop_checks", "blank"}:
            continue
        if questions is None or set(e.get("answers") or {}) <= set(questions):
            out.append(key)
    return sorted(out)


def expected_failures(tests: dict, entry: dict, backend: str | None = None) -> set:
    """The test cases an entry fails under Keras ``backend`` (default: the current one; see
    :func:`gradkit_tools.answers.entry_fails`): a case itself, or every case of a banded test."""
    from gradkit_tools.answers import entry_fails

    out = set()
    for name in entry_fails(entry, backend):
        cases = {c for c in tests if c == name or band_case_test(c) == name}
        assert cases, f"fails: {name!r} is no test case of the master"
        out |= cases
    return out


def case_points(configs: dict, tests: dict) -> dict:
    """``{case: points}`` by otter's rule: a question's cases with points keep them, the others share
    the rest of the question's points equally."""
    out = {}
    for q, cfg in configs.items():
        cases = {n: e for n, e in tests.items() if e[0] == q}
        pointed = {n: float(e[2]) for n, e in cases.items() if e[2] is not None}
        rest = [n for n in cases if n not in pointed]
        share = (float(cfg.get("points") or 0) - sum(pointed.values())) / len(rest) if rest else 0.0
        out.update(pointed)
        out.update({n: share for n in rest})
    return out


def assert_catalogue_answer(name: str, entry_name: str, tests: dict, questions, *, subset: bool = False) -> dict:
    """Run every test case of ``questions`` on the namespace of catalogue entry ``entry_name``
    (:func:`gradkit_tools.answers.namespace`): exactly the cases its ``fails:`` names fail (none for
    a right answer), and each ``hints:`` text is in its case's message. Returns the messages.
    With ``subset``, ``questions`` may be some of the entry's questions: its other failures are not run."""
    from gradkit_grader.bands import clear_memo
    from gradkit_tools.answers import entries, namespace
    from gradkit_tools.course import assignment

    a = assignment(name)
    entry = entries(a)[entry_name]
    names = [c for c, e in tests.items() if e[0] in questions]
    want = expected_failures(tests, entry)
    if subset:
        want &= set(names)
    assert want <= set(names), f"{entry_name}: fails: {sorted(want - set(names))} outside {sorted(questions)}"
    if entry["kind"] == "wrong" and not subset:
        assert want, f"{entry_name}: a wrong answer must name the cases it fails (fails:)"
    clear_memo()
    failed = failures(tests, names, namespace(a, entry_name))
    clear_memo()
    assert set(failed) == want, f"{entry_name}: failed {sorted(failed)}, catalogue says {sorted(want)}: {failed}"
    for case, text in (entry.get("hints") or {}).items():
        if subset and case not in names:
            continue
        assert text in failed.get(case, ""), f"{entry_name}: {case}'s message lacks {text!r}: {failed.get(case)}"
    return failed


def assert_expect_follows_fails(name: str, entry_name: str, configs: dict, tests: dict) -> None:
    """A right or wrong answer's ``expect:`` is what its ``fails:`` costs: per autograded question,
    its points less the points of the cases it fails (otter scores the passed cases' points) on
    TensorFlow, the backend the example submissions are graded on."""
    from gradkit_tools.answers import entries
    from gradkit_tools.course import assignment

    entry = entries(assignment(name))[entry_name]
    points, failed = case_points(configs, tests), expected_failures(tests, entry, "tensorflow")
    graded = {q for q, cfg in configs.items() if not cfg.get("manual")}
    want = {q: float(configs[q].get("points") or 0) - sum(points[c] for c in failed if tests[c][0] == q)
            for q in graded}
    got = {q: float((entry.get("expect") or {}).get(q, configs[q].get("points") or 0)) for q in graded}
    assert got == want, f"{entry_name}: expect {got} but fails: costs {want}"


# --------------------------------------------------------------------------- otter end to end

def otter(*args, cwd, timeout: float | None = None, extra_env: dict | None = None):
    """Run ``python -m otter *args`` in ``cwd``; assert that it exits 0 (showing the output's tail).

    ``timeout``: seconds (None: no limit). ``extra_env``: variables set on top of the current
    environment (None: the environment is inherited unchanged).
    """
    env = {**os.environ, **extra_env} if extra_env is not None else None
    proc = subprocess.run([sys.executable, "-m", "otter", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, f"otter {args[0]} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc


def grade_timed(zip_path: Path, notebook: Path, out: Path, *, scored_only: bool = False,
                **otter_kwargs) -> tuple[dict, float]:
    """``otter run`` of ``notebook`` with the autograder ``zip_path``, in the new folder ``out``.

    Returns ({test name: results.json entry}, seconds the otter run took). With ``scored_only``,
    only entries carrying a ``max_score``. ``otter_kwargs`` go to :func:`otter` (timeout, extra_env).
    """
    out.mkdir()
    t0 = time.perf_counter()
    otter("run", "-a", str(zip_path), "-o", str(out), "--no-logo", str(notebook), cwd=out, **otter_kwargs)
    seconds = time.perf_counter() - t0
    results = json.loads((out / "results.json").read_text())
    return {t["name"]: t for t in results["tests"] if not scored_only or "max_score" in t}, seconds


def grade(zip_path: Path, notebook: Path, out: Path, *, scored_only: bool = False, **otter_kwargs) -> dict:
    """:func:`grade_timed` without the time: {test name: results.json entry}."""
    return grade_timed(zip_path, notebook, out, scored_only=scored_only, **otter_kwargs)[0]


def assert_question_cases(tests: dict, points: dict) -> None:
    """Each autograded question has a public test, its public tests carry no points,
    and its hidden tests' points add up to the question's (``points``: question -> points)."""
    for q, total in points.items():
        cases = [(hidden, p) for (qq, hidden, p, _) in tests.values() if qq == q]
        assert any(not h for h, _ in cases), f"{q}: needs a public test"
        assert all(p == 0 for h, p in cases if not h), f"{q}: public tests carry no points"
        assert sum(p for h, p in cases if h) == total, f"{q}: hidden points must add up to {total}"


def assert_hidden_tests_self_contained(tests: dict, name: str) -> None:
    """Hidden tests read their bounds via ``tolerances("<name>")``, and no test cell imports at
    module level (imports go inside the test function: field guide section 1)."""
    for test, (_, hidden, _, src) in tests.items():
        assert f'tolerances("{name}")' in src or not hidden, f"{test}: bounds must come from tolerances.yml"
        for line in src.splitlines():
            assert not re.match(r"^(import|from)\s", line), f"{test}: module-level import {line!r}"
