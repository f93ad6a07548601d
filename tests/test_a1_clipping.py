"""Assignment a1_clipping (exploding gradients, gradient clipping): master tests and the otter pipeline.

* Fast part: the test cells of ``course/a1_clipping/a1_clipping.ipynb`` are extracted and run,
  outside otter, against the solution and against every right and wrong answer of the catalogue
  ``course/a1_clipping/answers.yml`` (the same entries make the example submissions and the
  calibration's power runs). Each wrong answer must fail exactly the test cases its ``fails:``
  names, with an ``AssertionError`` carrying its ``hints:`` (per-tensor norm where the global norm
  was asked, value clipping where norm clipping was asked, squared norm, summed norms, NaN on zero
  gradients, an optimizer that does not clip, ...), while correct alternative implementations pass
  every test; each answer's ``expect:`` must be what its ``fails:`` costs.
* Hidden tests draw their inputs from the per-submission seed (``gradkit_grader.seeding``); q2's
  convergence test is 4 band cases (``test_optimizer_converges_band_1..4``, ``gradkit_grader.bands``):
  ``fails: [test_optimizer_converges]`` stands for all four, a case name for one.
  The statistics of the tests that train live in ``gradkit_grader.course.a1_clipping.statistics``; the slow
  ``test_seed_sweep`` runs every hidden test on the solution under 20 base seeds.
* End-to-end part: the real ``otter assign`` on the master (with its own test run, which requires
  full marks), then the real ``otter run`` with the generated autograder zip on the solution
  notebook (full marks on every question) and on the student notebook (zero on every test).
"""
from __future__ import annotations

import inspect
import re

import pytest

from _masters import (
    assert_catalogue_answer,
    assert_expect_follows_fails,
    assert_hidden_tests_self_contained,
    assert_question_cases,
    catalogue_answers,
    compiled_tests,
    grade,
    master_parts,
    master_path,
    namespace,
    otter,
    run_test,
    solution_passes,
    sweep_base_seeds,
)

NAME = "a1_clipping"
MASTER = master_path(NAME)
POINTS = {"q1": 5, "q2": 2, "q3": 2}
PRELUDE = "import numpy as np\nimport keras\nfrom keras import ops\n"
OTTER_TIMEOUT = 900
BANDS = 4  # cases of each banded test
NORM_TESTS = ["test_global_norm_matches_definition", "test_global_norm_below_threshold_and_zero",
              "test_global_norm_bound_and_direction", "test_training_loop_matches_keras"]


def cases_of(tests: dict, name: str) -> list[str]:
    """The master's test cases that make up test ``name``: itself, or its band cases ``name_band_k``."""
    found = [n for n in tests if n == name or re.fullmatch(rf"{name}_band_\d+", n)]
    assert found, f"no test case {name} or {name}_band_k in the master"
    return found


def grouped_failures(tests: dict, names, ns: dict) -> dict:
    """``{test: message}`` of the tests in ``names`` that lose points on ``ns``.

    A banded test fails when any of its cases fails (its message: the first failing case's), and
    then it must fail ALL of them: a wrong answer scores 0 on it. Memoised statistics are cleared
    first, so each variant computes its own."""
    from gradkit_grader.bands import clear_memo

    clear_memo()
    failed = {}
    for name in names:
        messages = {c: run_test(tests[c][3], ns) for c in cases_of(tests, name)}
        bad = {c: m for c, m in messages.items() if m is not None}
        if bad:
            assert len(bad) == len(messages), f"{name}: partial credit where 0 was expected: {bad}"
            failed[name] = next(iter(bad.values()))
    return failed


@pytest.fixture(scope="module")
def master():
    configs, solutions, tests = master_parts(MASTER)
    ns = namespace(PRELUDE, solutions["q1"] + solutions["q2"])
    return ns, compiled_tests(tests)


# --------------------------------------------------------------------------- layout and config

def test_master_layout():
    configs, solutions, tests = master_parts(MASTER)
    assert {q: c.get("points") for q, c in configs.items()} == POINTS
    assert configs["q3"].get("manual") is True
    assert set(solutions) == {"q1", "q2"}  # q3's solution is a markdown answer
    assert_question_cases(tests, {q: POINTS[q] for q in ("q1", "q2")})
    assert_hidden_tests_self_contained(tests, NAME)
    bands = cases_of(tests, "test_optimizer_converges")
    assert bands == [f"test_optimizer_converges_band_{k}" for k in range(1, BANDS + 1)]
    assert {tests[b][2] for b in bands} == {POINTS["q2"] / 2 / BANDS}  # equal points, half of q2
    for b in bands:
        assert "assert_band_step(value, " + b[-1] + ", 4," in tests[b][3]


def test_grading_section_complete():
    """Every tol[...] key a test or its statistic (gradkit_grader.course.a1_clipping.statistics) reads exists in
    course/a1_clipping/tolerances.yml, and every key there (budgets aside) is used."""
    import gradkit_grader.course.a1_clipping.statistics as checks
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    _, _, tests = master_parts(MASTER)
    used = set()
    for src in [s for _, _, _, s in tests.values()] + [inspect.getsource(checks)]:
        used |= set(re.findall(r"""tol\[\s*["'](\w+)["']\s*\]""", src))
    assert used <= set(tol), f"keys missing in tolerances.yml: {sorted(used - set(tol))}"
    assert set(tol) <= used, f"unused keys in tolerances.yml: {sorted(set(tol) - used)}"


# --------------------------------------------------------------------------- solution

@pytest.mark.backends
def test_solution_passes_every_test(master):
    from gradkit_grader.bands import clear_memo

    ns, tests = master
    clear_memo()
    solution_passes(tests, list(tests), ns)

# --------------------------------------------------------------------------- the catalogue's answers

def checked_answers(questions=None) -> list[str]:
    """The right and wrong answers of course/a1_clipping/answers.yml editing only ``questions``
    (``catalogue_answers``), and its malformed answers whose ``fails:`` says which cases they fail
    in process (a NaN norm, flattened tensors)."""
    from gradkit_tools.answers import entries
    from gradkit_tools.course import assignment

    malformed = [k for k, e in entries(assignment(NAME), "malformed").items()
                 if "fails" in e and (questions is None or set(e.get("answers") or {}) <= set(questions))]
    return sorted(catalogue_answers(NAME, questions) + malformed)


@pytest.mark.backends
@pytest.mark.parametrize("entry", checked_answers(["q1"]))
def test_q1_catalogue_answer_fails_exactly_its_cases(master, entry):
    """Every q1 case (public ones too) on the entry's answers: exactly its ``fails:`` fail, each
    with its ``hints:`` (the message names the mistake: own norm, squared norm, summed norms,
    ZeroDivisionError); right answers (global norm by concatenation, NumPy float64, value clipping by
    where/sign or minimum/maximum) pass every case."""
    _, tests = master
    assert_catalogue_answer(NAME, entry, tests, ["q1"])


@pytest.mark.backends
@pytest.mark.parametrize("entry", checked_answers(["q2"]))
def test_q2_catalogue_answer_fails_exactly_its_cases(master, entry):
    """Every q2 case on the entry's optimizer; a wrong one fails all four band cases of
    test_optimizer_converges (NaN named when it explodes) except partial_q2_threshold_20: clipvalue=20
    overshoots (final MSE 25-85 over 30 fits), so the worst of 3 runs lies in the 3/4 band [25, 190]
    and only band 4 fails, with its message in MSE units and the seed note."""
    _, tests = master
    assert_catalogue_answer(NAME, entry, tests, ["q2"])


@pytest.mark.parametrize("entry", checked_answers())
def test_catalogue_expect_follows_fails(entry):
    """Each answer's ``expect:`` is its questions' points less the points of the cases it fails."""
    configs, _, tests = master_parts(MASTER)
    assert_expect_follows_fails(NAME, entry, configs, tests)


# --------------------------------------------------------------------------- statistics and seeds

def test_checks_are_the_statistics_the_master_uses():
    """gradkit_grader.course.a1_clipping.statistics.CHECKS names the master's tests, its bounds exist in
    tolerances.yml, and each test (every band case) calls its statistic and compares with those bounds."""
    import gradkit_grader.course.a1_clipping.statistics as checks
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    _, _, tests = master_parts(MASTER)
    assert {c.test for c in checks.CHECKS} == {"test_training_loop_matches_keras", "test_optimizer_converges"}
    for check in checks.CHECKS:
        cases = cases_of(tests, check.test)
        assert len(cases) == (BANDS if check.zero else 1), check
        for case in cases:
            src = tests[case][3]
            assert check.statistic.__name__ in src and f'tol["{check.full}"]' in src, case
            assert check.zero is None or f'tol["{check.zero}"]' in src, case
            # seeded per submission; the seed note printed once and carried by every failure
            assert "submission_seed(" in src and "seed_in_failures(seed, echo=True)" in src, case
        assert check.larger_is_better(tol) is False  # a weight difference, a log MSE: smaller is better
    assert tol["fit_log10_mse_full"] < tol["fit_log10_mse_zero"]


@pytest.mark.backends
def test_reference_components_pass_every_check():
    """gradkit's reference components, at the base seed: every check at full credit; the
    reference clip is also a correct answer to every q1 test."""
    import gradkit_grader.course.a1_clipping.statistics as checks
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    for check in checks.CHECKS:
        value = check.statistic(check.reference(tol), tol, tol["seed"])
        assert value <= tol[check.full], (check.name, value)
    _, _, tests = master_parts(MASTER)
    ns = {**namespace(PRELUDE), "clip_by_global_norm": checks.clip_by_global_norm}
    assert grouped_failures(compiled_tests(tests), NORM_TESTS, ns) == {}


def test_seeds_depend_on_the_code_and_reach_every_message(master):
    """Different code -> different inputs; the seed is printed and carried by a failure message."""
    from gradkit_grader.seeding import seed_note, submission_seed
    from gradkit_tools.answers import namespace as answer_namespace
    from gradkit_tools.course import assignment, tolerances

    _, tests = master
    tol = tolerances(NAME)
    right = answer_namespace(assignment(NAME), "correct_q1_concat_norm_where")
    wrong = answer_namespace(assignment(NAME), "wrong_global_per_tensor_norm")
    s_right = submission_seed(tol["seed"], right["clip_by_global_norm"])
    s_wrong = submission_seed(tol["seed"], wrong["clip_by_global_norm"])
    assert s_right != s_wrong
    message = run_test(tests["test_global_norm_matches_definition"][3], wrong)
    assert message.endswith(seed_note(s_wrong)), message
    message = run_test(tests["test_training_loop_matches_keras"][3], wrong)
    assert message.count(seed_note(s_wrong)) == 1, message


@pytest.mark.slow
def test_seed_sweep(master, monkeypatch):
    """The solution passes every hidden test (all band cases) under 20 base seeds: 20/20."""
    ns, tests = master
    sweep_base_seeds(monkeypatch, tests, [n for n, (_, h, _, _) in tests.items() if h], ns,
                     [7001 + 7919 * k for k in range(20)])  # 20 base seeds other than tolerances.yml's



# --------------------------------------------------------------------------- otter end to end

@pytest.mark.slow  # CI: test_committed_release assigns every master, test_grade_examples runs the zips
def test_otter_assign_and_run_end_to_end(tmp_path):
    from gradkit_tools.scan import scan_release

    result = tmp_path / "dist"
    otter("assign", str(MASTER), str(result), cwd=tmp_path, timeout=OTTER_TIMEOUT)  # its own test run needs full marks
    (zip_path,) = (result / "autograder").glob("*.zip")
    student_nb = result / "student" / f"{NAME}.ipynb"

    text = student_nb.read_text()
    assert "BEGIN SOLUTION" not in text and "hidden: true" not in text
    leaks = scan_release(result / "student", MASTER)
    assert not leaks, "student release leaks:\n" + "\n".join(map(str, leaks))

    solved = grade(zip_path, result / "autograder" / f"{NAME}.ipynb", tmp_path / "solution", timeout=OTTER_TIMEOUT)
    for q in ("q1", "q2"):
        assert solved[q]["score"] == solved[q]["max_score"] == POINTS[q], solved[q]
    assert solved["Public Tests"]["status"] == "passed"

    blank = grade(zip_path, student_nb, tmp_path / "student", timeout=OTTER_TIMEOUT)
    for q in ("q1", "q2"):
        assert blank[q]["score"] == 0 and blank[q]["max_score"] == POINTS[q], blank[q]
        assert "✅" not in blank[q]["output"], f"a test of {q} passes on the blank notebook:\n{blank[q]['output']}"
        assert blank[q]["output"].count("❌") == sum(
            1 for (qq, _, _, _) in master_parts(MASTER)[2].values() if qq == q), blank[q]["output"]
