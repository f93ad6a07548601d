"""Assignment a4_resnet (residual blocks): the master notebook's tests, and the real otter pipeline.

* Fast part: the test cells of ``course/a4_resnet/a4_resnet.ipynb`` are extracted and run,
  outside otter, against the solution and against every right and wrong answer of the catalogue
  ``course/a4_resnet/answers.yml`` (correct alternative implementations, typical mistakes). Each wrong
  answer must fail exactly the test cases its ``fails:`` names (missing skip -> skip structure and
  identity behaviour, skip added after the activation -> identity behaviour, wrong output width ->
  shapes, a plain net -> structure, gradient and training, ...), with an AssertionError whose message
  says what its ``hints:`` say; a wrong block is run through q2's tests too, which call it through
  ``build_resnet``. Its ``expect:`` must be what those failures cost.
* Statistics: the q2 banded tests compute their value with ``gradkit_grader.course.a4_resnet.statistics``; the
  solution earns full credit on them, and (slow) under 20 other base seeds on every hidden test.
* End-to-end part: the real ``otter assign`` on the master, then the real ``otter run`` with the
  generated autograder zip on the solution notebook (full marks) and on the student notebook
  (zero on every question: its stubs are blank).
"""
from __future__ import annotations

import inspect
import re
import time
from pathlib import Path

import pytest

from _masters import (
    assert_band_cases,
    assert_catalogue_answer,
    assert_expect_follows_fails,
    assert_hidden_tests_self_contained,
    assert_question_cases,
    catalogue_answers,
    compiled_tests,
    failures,
    grade,
    master_parts,
    master_path,
    namespace,
    otter,
    setup_source,
    solution_passes,
    sweep_base_seeds,
)

NAME = "a4_resnet"
MASTER = master_path(NAME)
POINTS = {"q1": 6, "q2": 6, "q3": 1}
BAND_STEPS = 4
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}  # otter's environment: TensorFlow's log lines stay out of the outputs


# --------------------------------------------------------------------------- master parsing

def _parts():
    """(setup source, {question: solution source}, {test name: (question, hidden, points, source)})."""
    _, solutions, tests = master_parts(MASTER)
    return setup_source(MASTER), solutions, tests


@pytest.fixture(scope="module")
def master():
    """(the solution's namespace, {test name: (question, hidden, points, test function)})."""
    setup, solutions, tests = _parts()
    ns = namespace(setup + "\n", solutions["q1"], solutions["q2"], solutions["q3"])
    return ns, compiled_tests(tests)


@pytest.fixture(autouse=True)
def _fresh_memo():
    from gradkit_grader.bands import clear_memo

    clear_memo()
    yield
    clear_memo()


def _hidden(tests, question=None):
    return [n for n, (q, hidden, _, _) in tests.items() if hidden and question in (None, q)]


# --------------------------------------------------------------------------- layout and config

def test_master_layout():
    setup, solutions, tests = _parts()
    assert setup is not None and {"q1", "q2"} <= set(solutions)
    assert_question_cases(tests, POINTS)
    assert_hidden_tests_self_contained(tests, NAME)
    for name, (q, hidden, points, src) in tests.items():
        if hidden:  # per-submission seed, printed; and derived from every student object the test receives
            params = re.search(rf"def {name}\((.*?)\)", src).group(1)
            assert f'submission_seed(tol["seed"], {params})' in src, name
            assert "print(seed_note(seed))" in src, name
    # a banded test: BAND_STEPS cases of equal points, numbered 1..BAND_STEPS, each its own step
    from gradkit_grader.course.a4_resnet.statistics import CHECKS

    assert_band_cases(tests, [c for c in CHECKS if c.zero], BAND_STEPS)  # q3's grid statement: pass or fail


def test_grading_section_complete():
    """Every tol[...] key the tests or the statistics read is in tolerances.yml, and every key there (budgets
    aside) is used."""
    import gradkit_grader.course.a4_resnet.statistics as module
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    _, _, tests = _parts()
    modules = [p.read_text() for p in sorted(Path(module.__file__).parent.glob("*.py"))]  # grid.py too
    sources = [src for *_, src in tests.values()] + modules
    used = set()
    for src in sources:
        used |= set(re.findall(r"""tol\[\s*["'](\w+)["']\s*\]""", src))
    used |= {k for c in module.CHECKS for k in (c.full, c.zero) if k}
    assert used <= set(tol), f"keys used by tests but missing in tolerances.yml: {sorted(used - set(tol))}"
    assert set(tol) <= used, f"keys in tolerances.yml no test uses: {sorted(set(tol) - used)}"


def test_checks_module():
    import gradkit_grader.course.a4_resnet.statistics as module
    from gradkit_grader.statistic import direction
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    assert len(Path(module.__file__).read_text().splitlines()) <= 300
    by_test = {c.test: c for c in module.CHECKS}
    assert set(by_test) == {"test_resnet_gradient", "test_resnet_trains", "test_grid_statement",
                            "test_resnet_learns_spirals"}
    assert direction(tol["grad_log10_ratio_full"], tol["grad_log10_ratio_zero"]) is True   # larger is better
    assert direction(tol["train_loss_full"], tol["train_loss_zero"]) is False              # smaller is better
    assert by_test["test_grid_statement"].larger_is_better(tol)  # a positive margin passes
    for c in module.CHECKS:
        grid = c.test == "test_grid_statement"
        want = {"vanishing_net", "exploding_net"} if grid else {"residual_block", "build_resnet"}
        assert set(c.reference(tol)) == want
        assert list(inspect.signature(c.statistic).parameters) == ["components", "tol", "seed"]


# --------------------------------------------------------------------------- q1: blocks

def test_q1_tests_pass_on_solution(master):
    ns, tests = master
    names = [n for n, (q, *_) in tests.items() if q == "q1"]
    assert failures(tests, names, ns) == {}


# --------------------------------------------------------------------------- q2: the network

def test_q2_expensive_tests_fail_fast_on_blank(master):
    ns, tests = master
    for blank in (None, lambda *a, **k: None):
        names = _hidden(tests, "q2")[1:]
        failed = failures(tests, names, {**ns, "build_resnet": blank})
        assert set(failed) == set(names)  # at the first student call: the messages say so
        assert all(re.search(r"not defined|returned NoneType", m) and "hidden-test seed" in m
                   for m in failed.values()), failed


def test_solution_earns_full_credit(master):
    """Every hidden test passes on the solution; the banded statistics are computed once each."""
    ns, tests = master
    solution_passes(tests, _hidden(tests), ns)


# --------------------------------------------------------------------------- the catalogue of answers

#: every right and wrong answer of answers.yml that is answer code (q1, q2 or both).
ANSWERS = catalogue_answers(NAME)


def test_catalogue_covers_every_check():
    """Each banded test has wrong answers marked ``power: true`` in the catalogue (``gradkit calibrate`` measures
    its power on them)."""
    from gradkit_grader.course.a4_resnet.statistics import CHECKS
    from gradkit_tools.answers import wrong_for
    from gradkit_tools.course import assignment

    for check in CHECKS:
        assert wrong_for(assignment(NAME), check.test, power=True), f"no power: true answer fails {check.test}"


#: answers whose q2 (trains ResNets, ~45 s each on 2 cores) also runs in the default suite: the calibration's
#: power answer (the solution's runs in test_solution_earns_full_credit); every answer's q2 runs in the slow suite
Q2_IN_DEFAULT = ("wrong_resnet_plain_stack",)


@pytest.mark.parametrize("entry", ANSWERS)
def test_catalogue_answer_q1(master, entry):
    """Every q1 test case on the catalogue answer ``entry`` (structure, no training): a right answer passes
    them all, a wrong one fails exactly its ``fails:`` among them, with its ``hints:`` in the messages."""
    _, tests = master
    assert_catalogue_answer(NAME, entry, tests, ("q1",), subset=True)


@pytest.mark.parametrize("entry", [e if e in Q2_IN_DEFAULT else pytest.param(e, marks=pytest.mark.slow)
                                   for e in ANSWERS])
def test_catalogue_answer(master, entry):
    """Every test case of q1 and q2 on the catalogue answer ``entry``: a right answer passes them all, a wrong
    one fails exactly its ``fails:`` (a failed banded test: all its cases), with its ``hints:`` in the
    messages. q2's tests call residual_block through build_resnet, so a block's answers run them too."""
    _, tests = master
    assert_catalogue_answer(NAME, entry, tests, tuple(POINTS))


@pytest.mark.parametrize("entry", ANSWERS)
def test_catalogue_expect_follows_fails(entry):
    """A catalogue answer's ``expect:`` is the points of q1 and q2 less those of the cases in its ``fails:``."""
    configs, _, tests = master_parts(MASTER)
    assert_expect_follows_fails(NAME, entry, configs, tests)


@pytest.mark.slow
def test_seed_sweep(master, monkeypatch):
    """The solution passes every hidden test under 20 other base seeds (tol["seed"] replaced)."""
    ns, tests = master
    sweep_base_seeds(monkeypatch, tests, _hidden(tests), ns, range(1, 21))



# --------------------------------------------------------------------------- end to end

@pytest.mark.slow  # CI: test_committed_release assigns every master, test_grade_examples runs the zips
def test_otter_assign_and_run_end_to_end(tmp_path):
    result = tmp_path / "dist"
    t0 = time.time()
    otter("assign", "--no-run-tests", str(MASTER), str(result), cwd=MASTER.parent, extra_env=QUIET)
    (zip_path,) = (result / "autograder").glob(f"{NAME}-autograder_*.zip")
    student = result / "student" / f"{NAME}.ipynb"
    solution = result / "autograder" / f"{NAME}.ipynb"

    # the student notebook carries no solution code and no hidden test
    text = student.read_text()
    for secret in ("layers.Add(name=f\"{name}_add\")", "test_block_identity_when_branch_is_off",
                   "test_resnet_gradient_band_1", "BEGIN SOLUTION"):
        assert secret not in text, secret

    t1 = time.time()
    sol = grade(zip_path, solution, tmp_path / "sol", scored_only=True, extra_env=QUIET)
    t2 = time.time()
    assert {"q1", "q2"} <= set(sol)
    for q, entry in sol.items():
        assert entry["score"] == entry["max_score"] > 0, f"solution lost points on {q}:\n{entry.get('output')}"
    assert sum(e["max_score"] for e in sol.values()) == 12

    blank = grade(zip_path, student, tmp_path / "stu", scored_only=True, extra_env=QUIET)
    t3 = time.time()
    assert set(blank) == set(sol)
    _, _, tests = _parts()
    for q, entry in blank.items():
        assert entry["score"] == 0, f"blank stubs scored on {q}:\n{entry.get('output')}"
        # every case, hidden ones included, is reported as failing
        n_cases = sum(tq == q for tq, *_ in tests.values())
        out = entry.get("output", "")
        assert "Test case passed" not in out and out.count("Test case failed") == n_cases, out
    print(f"\nassign {t1 - t0:.0f} s, run solution {t2 - t1:.0f} s, run blank {t3 - t2:.0f} s")
