"""Shared harness for the assignment tests (test_a1_clipping ... test_a4_resnet).

An Otter master notebook (``solutions/<name>/<name>.ipynb``) is read into its parts, the test cells
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

import inspect
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]


def master_path(name: str) -> Path:
    """The master notebook of assignment ``name``: ``solutions/<name>/<name>.ipynb``."""
    return ROOT / "solutions" / name / f"{name}.ipynb"


# --------------------------------------------------------------------------- master parsing

def _walk(master: Path):
    """Yield ``(cell, config, block)`` for every cell of the master, in order.

    ``config`` is the YAML config of the question the cell lies in (None outside ``BEGIN/END
    QUESTION``; the ``BEGIN QUESTION`` cell itself carries its config), ``block`` is
    ``"solution"``, ``"tests"`` or None (the state after the cell, for the raw marker cells).
    """
    nb = nbformat.read(str(master), as_version=4)
    config, block = None, None
    for cell in nb.cells:
        src = cell.source
        first = src.strip().splitlines()[0] if src.strip() else ""
        if cell.cell_type == "raw":
            if first.startswith("# BEGIN QUESTION"):
                config = yaml.safe_load("\n".join(src.strip().splitlines()[1:]))
            elif first.startswith("# BEGIN SOLUTION"):
                block = "solution"
            elif first.startswith("# BEGIN TESTS"):
                block = "tests"
            elif first.startswith(("# END SOLUTION", "# END TESTS")):
                block = None
            elif first.startswith("# END QUESTION"):
                config = None
        yield cell, config, block


def master_parts(master: Path, *, markdown_answers: bool = False):
    """The parts of a master notebook, as three dicts.

    ``({question: config}, {question: solution source}, {test name: (question, hidden, points, source)})``.

    A question's solution is its solution-block code cells, concatenated (each followed by a newline).
    With ``markdown_answers``, markdown cells in a solution block (a manual question's written
    answer) are part of the solution too; otherwise only code counts. ``hidden`` and ``points`` come
    from the test cell's ``BEGIN TEST CONFIG`` header (not hidden, no points when it has none).
    """
    configs, solutions, tests = {}, {}, {}
    for cell, config, block in _walk(master):
        if config is None:
            continue
        question, src = config["name"], cell.source
        if cell.cell_type == "raw":  # the BEGIN QUESTION cell (and the question's other raw cells)
            configs[question] = config
            continue
        if cell.cell_type == "markdown" and markdown_answers:
            if block == "solution":
                solutions[question] = solutions.get(question, "") + src + "\n"
            continue
        if cell.cell_type != "code":
            continue
        if block == "solution":
            solutions[question] = solutions.get(question, "") + src + "\n"
        elif block == "tests":
            name = re.search(r"^def (\w+)\(", src, re.M).group(1)
            conf = re.match(r'""" # BEGIN TEST CONFIG\n(.*?)\n""" # END TEST CONFIG\n', src, re.S)
            conf = yaml.safe_load(conf.group(1)) if conf else {}
            tests[name] = (question, bool(conf.get("hidden", False)), conf.get("points"), src)
    return configs, solutions, tests


def setup_source(master: Path, marker: str = "from gradkit import"):
    """The master's set-up cell: the first code cell outside solution and test blocks containing
    ``marker``; None when there is none."""
    for cell, _, block in _walk(master):
        if cell.cell_type == "code" and block is None and marker in cell.source:
            return cell.source
    return None


# --------------------------------------------------------------------------- running test cells

def cell_test(src: str):
    """The test function of a test cell, without the cell's own call line (the cell is not run)."""
    body = "\n".join(ln for ln in src.splitlines() if not re.match(r"^\w+\(.*\)\s*$", ln))
    ns: dict = {}
    exec(compile(body, "<test cell>", "exec"), ns)
    (fn,) = [v for k, v in ns.items() if k.startswith("test_") and callable(v)]
    return fn


def compiled_tests(tests: dict) -> dict:
    """``tests`` with each entry's last item (the test cell's source) replaced by its test function."""
    return {name: (*entry[:-1], cell_test(entry[-1])) for name, entry in tests.items()}


def namespace(prelude: str, *sources: str) -> dict:
    """The globals after running ``prelude`` followed by ``sources`` (joined by newlines): what a
    student notebook defines. ``prelude`` stands for the notebook's set-up (imports, constants)."""
    ns: dict = {}
    exec(compile(prelude + "\n".join(sources), "<student code>", "exec"), ns)
    return ns


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
    return re.sub(r"_band_\d+$", "", case)


def failed_by_test(tests: dict, names, ns: dict) -> dict:
    """``{test (band cases merged): [messages]}`` of the tests in ``names`` that fail on ``ns``."""
    out: dict = {}
    for case, msg in failures(tests, names, ns).items():
        out.setdefault(band_case_test(case), []).append(msg)
    return out


def assert_band_cases(tests: dict, checks, band_steps: int) -> dict:
    """Each check of ``checks`` (gradkit.checks) is a banded test: ``band_steps`` hidden cases
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
    """Every test of ``hidden`` passes on ``ns`` under each base seed of ``bases`` (grading.yml's
    ``seed`` replaced through ``gradkit.config.tolerances``; memoized statistics forgotten per seed)."""
    import gradkit.config
    from gradkit.bands import clear_memo

    real = gradkit.config.tolerances
    report, passed = [], 0
    for base in bases:
        monkeypatch.setattr(gradkit.config, "tolerances",
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
        assert f'tolerances("{name}")' in src or not hidden, f"{test}: bounds must come from grading.yml"
        for line in src.splitlines():
            assert not re.match(r"^(import|from)\s", line), f"{test}: module-level import {line!r}"
