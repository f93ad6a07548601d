"""Assignment a3_dying_relu (dying ReLU, leaky ReLU): master tests and the otter pipeline.

* Fast part: the test cells of ``course/a3_dying_relu/a3_dying_relu.ipynb`` are pulled out of the
  master and run, outside otter, against the solution code and against the right and wrong answers of
  the assignment's one catalogue, ``course/a3_dying_relu/answers.yml`` (a hard-coded slope, the slope
  applied to positive inputs, a NumPy leaky ReLU that autodiff cannot see, a detector reducing over
  the members axis or using the standard deviation, the exponent L - 1, blank stubs, ...). Each wrong
  answer must fail exactly the test cases its ``fails:`` names with an AssertionError (and say what
  its ``hints:`` say); right answers must pass everything; each entry's ``expect:`` follows from its
  ``fails:``.
* Study part (q4): the two banded hidden tests compute their collapse rates with
  ``gradkit_grader.course.a3_dying_relu.statistics`` under the per-submission seed; the solution earns full credit,
  the catalogue's answers that change a study (q1, q2 or q4 edits) fail exactly their ``fails:`` on
  every question (the four cases of a banded test count as that test, and a failed banded test earns
  none of its cases), and a slow seed sweep runs every hidden test under 20 other base seeds.
* End-to-end part: the real ``otter assign`` on the master, then the real ``otter run`` with the
  generated autograder zip on the solution notebook (full marks) and on the student notebook
  (zero on every test).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from _masters import (
    assert_band_cases,
    assert_catalogue_answer,
    assert_expect_follows_fails,
    assert_hidden_tests_self_contained,
    assert_question_cases,
    band_case_test,
    catalogue_answers,
    compiled_tests,
    expected_failures,
    failures,
    grade_timed,
    master_parts,
    master_path,
    namespace,
    otter,
    solution_passes,
    sweep_base_seeds,
)
from gradkit_tools.answers import entries, prelude
from gradkit_tools.answers import namespace as answer_namespace
from gradkit_tools.course import assignment

NAME = "a3_dying_relu"
MASTER = master_path(NAME)
POINTS = {"q1": 3, "q2": 3, "q3": 2, "q4": 4}  # auto-graded questions
MANUAL = {"q5": 2, "q6": 2}
#: What the student notebook defines before the questions: the catalogue's prelude (answers.yml), which
#: test_prelude_matches_master_setup checks against the master's set-up cell.
PRELUDE = prelude(assignment(NAME))
OTTER_TIMEOUT = 1800
BAND_STEPS = 4


@pytest.fixture(scope="module")
def master():
    configs, solutions, tests = master_parts(MASTER)
    return configs, solutions, compiled_tests(tests)


@pytest.fixture(autouse=True)
def _fresh_memo():
    from gradkit_grader.bands import clear_memo

    clear_memo()
    yield
    clear_memo()


def _tests_of(fns, question, hidden=None):
    return [n for n, (q, h, _, _) in fns.items() if q == question and (hidden is None or h == hidden)]




# --------------------------------------------------------------------------- layout and config

def test_master_layout():
    configs, solutions, tests = master_parts(MASTER)
    assert {q: c.get("points") for q, c in configs.items()} == {**POINTS, **MANUAL}
    assert all(configs[q].get("manual") is True for q in MANUAL)
    assert set(solutions) == set(POINTS)
    assert_question_cases(tests, POINTS)
    assert_hidden_tests_self_contained(tests, NAME)
    for name, (_, hidden, _, src) in tests.items():
        if hidden:  # a per-submission seed, from every student object the test receives, printed
            params = re.search(rf"def {name}\((.*?)\)", src).group(1)
            assert f'submission_seed(tol["seed"], {params})' in src, name
            assert "print(seed_note(seed))" in src or ("note = seed_note(seed)" in src and "print(note)" in src), name
    from gradkit_grader.course.a3_dying_relu.statistics import CHECKS

    for test, cases in assert_band_cases(tests, CHECKS, BAND_STEPS).items():
        for n, (_, _, _, src) in cases.items():  # the statistic is computed once per submission
            assert f'memo(("{test}", seed,' in src, n
    for name, (_, hidden, _, src) in tests.items():
        body = src.split('""" # END TEST CONFIG\n')[-1]
        lines = body.splitlines()
        assert lines[0].startswith("def test_"), name
        if "tol[" in body:  # the form `gradkit release` bakes, as the first lines
            assert lines[1].strip() == "from gradkit_tools.course import tolerances", name
            assert lines[2].strip() == f'tol = tolerances("{NAME}")', name
        for line in lines:
            assert not re.match(r"^(import|from)\s", line), f"{name}: module-level import {line!r}"
    nb = nbformat.read(str(MASTER), as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    config = yaml.safe_load(nb.cells[0].source.split("\n", 1)[1])
    assert config["export_cell"]["pdf"] is True and config["export_cell"]["require_no_pdf_ack"] is True
    assert config["tests"] == {"files": False, "ok_format": False}


def test_grading_section_complete_and_consistent():
    """Every tol[...] key a test or a statistic reads exists in tolerances.yml, every key there (budgets
    aside) is used, and the collapse definition and the study's networks are gradkit's (whose defaults
    keep the numbers of seed 002's study: grid of 256 points, rtol 1e-3, 10 x 2 networks)."""
    import inspect

    import gradkit_grader.course.a3_dying_relu.statistics as module
    from gradkit.ensemble import DEFAULT_GRID_POINTS, DEFAULT_RTOL, collapse_rate
    from gradkit_grader.statistic import direction
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    sources = [src for *_, src in master_parts(MASTER)[2].values()] + [Path(module.__file__).read_text()]
    used = {k for c in module.CHECKS for k in (c.full, c.zero)}
    for src in sources:
        used |= set(re.findall(r"""tol\[\s*["'](\w+)["']\s*\]""", src))
    assert used <= set(tol), f"keys missing in tolerances.yml: {sorted(used - set(tol))}"
    assert set(tol) <= used, f"unused keys in tolerances.yml: {sorted(set(tol) - used)}"
    # the definition of "collapsed" and the study's networks: gradkit.ensemble's defaults are the single
    # source (the root grading.yml's collapse/study sections, which held the same numbers, are gone)
    assert tol["rtol"] == DEFAULT_RTOL == 1.0e-3
    assert tol["grid_points"] == DEFAULT_GRID_POINTS == 256
    defaults = {k: p.default for k, p in inspect.signature(collapse_rate).parameters.items()}
    assert tol["study_depth"] == defaults["depth"] == 10
    assert tol["study_width"] == defaults["width"] == 2
    assert tol["study_confidence"] != defaults["confidence"]  # so that dropping `confidence` shows
    assert tol["default_slope"] in tol["slopes"]
    assert 0 < tol["margin"] < 1 and tol["rtol"] < tol["live_range_fraction"] < 1
    assert direction(tol["relu_rate_full"], tol["relu_rate_zero"]) is True     # ReLU: larger is right
    assert direction(tol["leaky_rate_full"], tol["leaky_rate_zero"]) is False  # leaky: smaller is right


def test_prelude_matches_master_setup():
    """PRELUDE above repeats the master's set-up cell; fail if the notebook changes it."""
    nb = nbformat.read(str(MASTER), as_version=4)
    setup = next(c.source for c in nb.cells if c.cell_type == "code" and "TARGET_RANGE =" in c.source)
    for line in PRELUDE.strip().splitlines():
        key = line.split("#")[0].strip()
        if key.startswith(("import", "from")) or "=" in key:
            compact = re.sub(r"\s+", "", key)
            assert compact in re.sub(r"\s+", "", setup), f"set-up cell no longer contains {key!r}"


# --------------------------------------------------------------------------- solution, fast questions

FAST = ("q1", "q2", "q3")


@pytest.mark.backends
def test_solution_passes_fast_tests(master):
    _, solutions, fns = master
    solution_passes(fns, [name for q in FAST for name in _tests_of(fns, q)],
                    namespace(PRELUDE, *(solutions[q] for q in FAST)))

# --------------------------------------------------------------------------- the catalogue's answers

#: The right and wrong answers of course/a3_dying_relu/answers.yml (answer code, not files), by what they edit.
ANSWERS = catalogue_answers(NAME)
FAST_ANSWERS = catalogue_answers(NAME, FAST)
#: q4's studies train with the student's leaky_relu (q1) and is_collapsed (q2) as well as run_study.
STUDY_INPUTS = ("q1", "q2", "q4")


def _edited(entry_name):
    return set(entries(assignment(NAME))[entry_name].get("answers") or {})


def _catalogued_failures(fns, entry_name):
    return expected_failures(fns, entries(assignment(NAME))[entry_name])


def _study_answers():
    """Answers whose studies differ from the solution's (they edit q1, q2 or q4) or that fail a q4 case."""
    _, _, tests = master_parts(MASTER)
    return [e for e in ANSWERS
            if _edited(e) & set(STUDY_INPUTS) or any(tests[c][0] == "q4" for c in _catalogued_failures(tests, e))]


@pytest.mark.parametrize("entry", [pytest.param(e, marks=pytest.mark.backends) if "q1" in _edited(e) else e
                                   for e in FAST_ANSWERS])
def test_catalogue_answer_fast_questions(master, entry):
    """Each answer editing only q1-q3 fails exactly its catalogued cases of q1-q3 (in process, no study),
    with the catalogued hints; those that also fail q4 cases are checked whole by the study test below."""
    _, _, fns = master
    want = _catalogued_failures(fns, entry)
    fast = [c for c, (q, _, _, _) in fns.items() if q in FAST]
    if want <= set(fast):
        assert_catalogue_answer(NAME, entry, fns, FAST)
        return
    failed = failures(fns, fast, answer_namespace(assignment(NAME), entry))
    assert set(failed) == want & set(fast), f"{entry}: failed {sorted(failed)}, catalogue says {sorted(want)}"
    for case, text in (entries(assignment(NAME))[entry].get("hints") or {}).items():
        if case in fast:
            assert text in failed.get(case, ""), f"{entry}: {case}'s message lacks {text!r}: {failed.get(case)}"


@pytest.mark.parametrize("entry", ANSWERS)
def test_catalogue_expect_follows_fails(master, entry):
    """Every answer's expected score is its points less the points of the cases its fails: names."""
    configs, _, fns = master
    assert_expect_follows_fails(NAME, entry, configs, fns)


# --------------------------------------------------------------------------- the study (q4)

def test_checks_module():
    """The statistics module: small, one Check per banded test, reference components that run."""
    import gradkit_grader.course.a3_dying_relu.statistics as module

    assert len(Path(module.__file__).read_text().splitlines()) <= 300
    assert {c.test for c in module.CHECKS} == {"test_run_study_relu", "test_run_study_leaky"}
    from gradkit_tools.course import tolerances

    ref = module.CHECKS[0].reference(tolerances(NAME))
    assert set(ref) == {"run_study", "leaky_relu", "is_collapsed"}


def test_born_dead_matches_theory():
    """born_dead() (the ReLU check's exact side condition) finds as many born-dead networks as Part 3's
    theory allows: P(born dead) lies in the Bonferroni band [1 - 2 (1 - p), p], p = 1 - (3/4)^10,
    so the count of study_members i.i.d. networks lies in the 1 - 1e-4 Wilson interval of the band."""
    from gradkit.stats import wilson_interval
    from gradkit_grader.course.a3_dying_relu.statistics import born_dead
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    n = tol["study_members"]
    p = 1.0 - (1.0 - 2.0 ** -tol["study_width"]) ** tol["study_depth"]
    for seed in (0, 12345):
        k = int(born_dead(tol, seed).sum())
        lo, hi = wilson_interval(k, n, 1 - 1e-4)
        assert lo <= p and hi >= 1 - 2 * (1 - p), \
            f"seed {seed}: {k}/{n} born dead, band [{1 - 2 * (1 - p):.3f}, {p:.3f}]"


def test_solution_passes_every_hidden_test(master):
    """The solution passes every hidden test (q4 included: two 500-network studies); times printed."""
    _, solutions, fns = master
    solution_passes(fns, [name for name, (_, hidden, _, _) in fns.items() if hidden],
                    namespace(PRELUDE, *(solutions[q] for q in POINTS)))


@pytest.mark.slow
@pytest.mark.parametrize("entry", _study_answers())
def test_catalogue_answer_whole_notebook(master, entry):
    """Each answer whose studies differ from the solution's fails exactly its catalogued cases of every
    autograded question, q4's two 500-network studies included; a failed banded test earns none of its
    cases (fails: names the test) and every band case's message carries the hidden-test seed."""
    _, _, fns = master
    failed = assert_catalogue_answer(NAME, entry, fns, tuple(POINTS))
    for case, message in failed.items():
        if band_case_test(case) != case:
            assert "hidden-test seed" in message, f"{entry}: {case}: {message}"


@pytest.mark.slow
def test_seed_sweep(master, monkeypatch):
    """The solution passes every hidden test under 20 other base seeds (tol["seed"] replaced)."""
    _, solutions, fns = master
    sweep_base_seeds(monkeypatch, fns, [n for n, (_, h, _, _) in fns.items() if h],
                     namespace(PRELUDE, *(solutions[q] for q in POINTS)), range(100, 120))



# --------------------------------------------------------------------------- otter end to end

@pytest.mark.slow  # CI: test_committed_release assigns every master, test_grade_examples runs the zips
def test_otter_assign_and_run_end_to_end(tmp_path):
    """Solution: full marks (q1-q4, every case, q4 included: its hidden tests run the real study).
    Student notebook: zero on every question, every case failing."""
    from gradkit_tools.scan import scan_release

    result = tmp_path / "dist"
    # --no-run-tests: the solution is graded below with the same zip through `otter run`.
    otter("assign", "--no-run-tests", str(MASTER), str(result), cwd=tmp_path, timeout=OTTER_TIMEOUT)
    (zip_path,) = (result / "autograder").glob("*.zip")
    student_nb = result / "student" / f"{NAME}.ipynb"
    text = student_nb.read_text()
    assert "BEGIN SOLUTION" not in text and "hidden: true" not in text
    leaks = scan_release(result / "student", MASTER)
    assert not leaks, "student release leaks:\n" + "\n".join(map(str, leaks))

    tests = master_parts(MASTER)[2]
    n_cases = {q: sum(1 for (qq, _, _, _) in tests.values() if qq == q) for q in POINTS}

    solved, t_solution = grade_timed(zip_path, result / "autograder" / f"{NAME}.ipynb", tmp_path / "solution",
                                      timeout=OTTER_TIMEOUT)
    for q, pts in POINTS.items():
        assert solved[q]["score"] == solved[q]["max_score"] == pts, solved[q]
    assert set(solved) == set(POINTS) | {"Public Tests"}, sorted(solved)  # manual questions are not auto-graded

    blank, t_student = grade_timed(zip_path, student_nb, tmp_path / "student", timeout=OTTER_TIMEOUT)
    for q, pts in POINTS.items():
        assert blank[q]["score"] == 0 and blank[q]["max_score"] == pts, blank[q]
        assert "✅" not in blank[q]["output"], f"a test of {q} passes on the blank notebook:\n{blank[q]['output']}"
        assert blank[q]["output"].count("❌") == n_cases[q], blank[q]["output"]
    print(f"otter run: solution {t_solution:.1f} s, blank student notebook {t_student:.1f} s")
