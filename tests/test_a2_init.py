"""Assignment a2_init (Glorot / He initialisation): master tests and the otter pipeline.

* Fast part: the test cells of ``course/a2_init/a2_init.ipynb`` are extracted and run, outside
  otter, against the solution and against every right and wrong answer of the catalogue
  ``course/a2_init/answers.yml`` (correct alternatives: NumPy draws, Keras' own initializers where
  they draw the same distribution; wrong ones: He with the fan-out, the Glorot-uniform limit used as
  a normal's standard deviation, a truncated normal, a Glorot init without the receptive field,
  swapped fans, a seed that is ignored, ...). Each answer fails exactly the test cases its ``fails:``
  names, with an ``AssertionError`` whose message says what its ``hints:`` say, and its ``expect:``
  is what those cases cost.
* Statistical part: the bounds of tolerances.yml are re-derived from their stated formulas, the
  p-values of gradkit_grader.course.a2_init.statistics reject exactly outside the Wilson / chi-square intervals, and
  (slow) the solution passes every hidden test under 20 other base seeds (per-submission seeds:
  gradkit_grader.seeding). The circles training test is banded (4 cases); an answer failing it fails all 4.
* End-to-end part: the real ``otter assign`` on the master (with its own test run, which requires
  full marks), then the real ``otter run`` with the generated autograder zip on the solution
  notebook (full marks on every question) and on the student notebook (zero on every test).
"""
from __future__ import annotations

import inspect
import math
import re
import time
from pathlib import Path

import nbformat
import numpy as np
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
    solution_passes,
    sweep_base_seeds,
)

NAME = "a2_init"
MASTER = master_path(NAME)
POINTS = {"q1": 2, "q2": 2, "q3": 1, "q4": 5, "q5": 4, "q6": 2, "q7": 2, "q8": 2, "q9": 1}
MANUAL = {"q2", "q6", "q8"}
PRELUDE = "import math\nimport functools\nimport numpy as np\nimport keras\nfrom keras import ops\n"
OTTER_TIMEOUT = 1200


@pytest.fixture(scope="module")
def master():
    configs, solutions, tests = master_parts(MASTER, markdown_answers=True)
    source = "".join(solutions[q] for q in ("q1", "q3", "q4", "q5", "q7", "q9"))
    return source, compiled_tests(tests)


def _with(source: str, replacement: str) -> dict:
    """The solution namespace with some functions redefined (a student's variant); forgets the
    statistics memoized for the previous variant (a variant may keep a function's code and seed)."""
    from gradkit_grader.bands import clear_memo

    clear_memo()
    return namespace(PRELUDE, source + "\n" + replacement)


# --------------------------------------------------------------------------- layout and config

def test_master_layout():
    configs, solutions, tests = master_parts(MASTER, markdown_answers=True)
    assert {q: c.get("points") for q, c in configs.items()} == POINTS
    assert {q for q, c in configs.items() if c.get("manual")} == MANUAL
    assert set(solutions) == set(POINTS), "every question (manual ones: a markdown answer) has a solution"
    assert_question_cases(tests, {q: POINTS[q] for q in set(POINTS) - MANUAL})
    assert_hidden_tests_self_contained(tests, NAME)


def test_grading_section_complete():
    """Every tol[...] key a test (or a module of gradkit_grader.course.a2_init, its statistics) reads
    exists in course/a2_init/tolerances.yml, and every key there (budgets aside) is used."""
    import gradkit_grader.course.a2_init.statistics as checks
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    _, _, tests = master_parts(MASTER, markdown_answers=True)
    used = set()
    modules = [p.read_text() for p in sorted(Path(inspect.getfile(checks)).parent.glob("*.py"))]
    for src in [entry[-1] for entry in tests.values()] + modules:
        used |= set(re.findall(r"""tol\[\s*["'](\w+)["']\s*\]""", src))
    used |= {c.full for c in checks.CHECKS} | {c.zero for c in checks.CHECKS if c.zero}  # bounds read as tol[key]
    assert used <= set(tol), f"keys missing in tolerances.yml: {sorted(used - set(tol))}"
    assert set(tol) <= used, f"unused keys in tolerances.yml: {sorted(set(tol) - used)}"


def test_otter_ignore_only_on_experiment_cells():
    nb = nbformat.read(str(MASTER), as_version=4)
    for cell in nb.cells:
        if "otter_ignore" in cell.metadata.get("tags", []):
            assert "def " not in cell.source.split("\n", 1)[0] and "BEGIN SOLUTION" not in cell.source


# --------------------------------------------------------------------------- bounds re-derived

def test_bounds_follow_their_derivations():
    from scipy import stats as st

    from gradkit.stats import variance_interval
    from gradkit_grader.course.a2_init.reference import compute_fans
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    alpha = tol["min_pvalue"]
    n_min = min(int(np.prod(s)) for s in tol["shapes"])
    assert n_min >= 10_000
    lo, hi = variance_interval(n_min, 1.0, 1 - alpha)
    assert 0.92 < lo and hi < 1.08  # +-6.5 %: far from the mistakes' ratios
    for ratio in (0.5, 0.87962566103423978 ** 2, 2.0, 3.0):
        assert not lo <= ratio <= hi
    # He with fan_out is detected on every non-square shape
    for shape in tol["shapes"]:
        fi, fo = compute_fans(shape)
        assert not lo <= fi / fo <= hi, shape
    # the normal tail check separates a normal from a (rescaled) truncated normal
    p0 = 2 * st.norm.sf(tol["tail_z"])
    assert tol["tail_z"] > 2 / 0.87962566103423978 and p0 * n_min > 100  # truncated: no draw beyond 2.27 sigma
    # the He band excludes Glorot already at layer 1, the ratio band separates 1 from 1/sqrt(2)
    short, deep = tol["relu_max_log_dev_short"], tol["relu_max_log_dev_deep"]
    assert math.log(math.sqrt(2)) > short and short < deep
    assert (1 / math.sqrt(2)) * (1 + tol["relu_max_ratio_dev"]) < 1 - tol["relu_max_ratio_dev"]
    # Hanin & Rolnick's fluctuation estimate behind the log bands, at two-sided 1e-4
    z = st.norm.ppf(1 - 1e-4 / 2)
    for depth, band in ((tol["relu_short_depth"], short), (tol["relu_depth"], deep)):
        sd = math.sqrt(5 * depth / tol["relu_width"]) / 2 / math.sqrt(tol["relu_nets"])
        assert band >= z * sd - 1e-9, (depth, band, z * sd)
    # q1: ddof 0 and 1 both pass
    assert 1 / (2 * tol["std_batch"]) < tol["std_rtol"]
    # q4 band: chance level (0.5) earns nothing; a chance-level classifier exceeds the zero bound on the
    # 500 test points with probability < 1e-4 (normal approximation of the binomial, one-sided)
    n_test = tol["circles_samples"] - tol["circles_n_train"]
    assert 0.5 + st.norm.isf(1e-4) * math.sqrt(0.25 / n_test) < tol["circles_acc_zero"] < tol["circles_acc_full"] < 1


def test_distribution_pvalues_match_the_intervals():
    """The p-values of gradkit_grader.course.a2_init.statistics reject exactly outside the Wilson / chi-square
    intervals."""
    from scipy import stats as st

    from gradkit.stats import variance_interval, wilson_interval
    from gradkit_grader.course.a2_init.statistics import distribution_findings
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    alpha, n = tol["min_pvalue"], 10_000
    lo, hi = variance_interval(n, 1.0, 1 - alpha)
    for s2 in (lo * 0.999, lo * 1.001, hi * 0.999, hi * 1.001):
        chi = (n - 1) * s2
        p = 2 * min(st.chi2.cdf(chi, n - 1), st.chi2.sf(chi, n - 1))
        assert (p >= alpha) == (lo <= s2 <= hi), s2
    p0 = 2 * st.norm.sf(tol["tail_z"])
    for count in range(60, 200):
        wlo, whi = wilson_interval(count, n, 1 - alpha)
        p = 2 * st.norm.sf(abs(count / n - p0) / math.sqrt(p0 * (1 - p0) / n))
        assert (p >= alpha) == (wlo <= p0 <= whi), count
    # and the findings of a plain N(0, var) with the right variance pass at their own p-values
    def he_normal(shape, dtype="float32", seed=None):
        fan_in = int(np.prod(shape[:-1]))
        return np.random.default_rng(seed).normal(0, math.sqrt(2 / fan_in), size=shape).astype(dtype)

    findings = distribution_findings(he_normal, "he_normal", tol, 7)
    assert len(findings) == 2 + 3 * len(tol["shapes"]) and min(p for p, _ in findings) >= alpha


# --------------------------------------------------------------------------- solution

@pytest.mark.backends
def test_solution_passes_every_test(master):
    source, tests = master
    solution_passes(tests, list(tests), _with(source, ""))


@pytest.mark.slow
def test_seed_sweep(master, monkeypatch):
    """The solution passes every hidden test under 20 other base seeds (tol["seed"] replaced)."""
    source, tests = master
    sweep_base_seeds(monkeypatch, tests, [n for n, (_, h, _, _) in tests.items() if h], _with(source, ""),
                     range(1, 21))



# --------------------------------------------------------------------------- the catalogue of answers

#: the questions whose tests call a question's functions: the four initialisers call fans (q3)
CALLERS = {"q1": {"q1"}, "q3": {"q3", "q4", "q5", "q9"}, "q4": {"q4"}, "q5": {"q5"}, "q7": {"q7"}, "q9": {"q9"}}
ANSWERS = catalogue_answers(NAME)


def _questions(entry: str) -> list[str]:
    """The questions whose test cases an answer can change: those it edits and their callers (every
    autograded question for an answer that edits none)."""
    from gradkit_tools.answers import entries
    from gradkit_tools.course import assignment

    edited = set(entries(assignment(NAME))[entry].get("answers") or {})
    return sorted(set().union(*(CALLERS[q] for q in edited)) if edited else set(CALLERS))


@pytest.mark.parametrize("entry", ANSWERS)
def test_catalogue_answer_fails_exactly_its_cases(master, entry):
    """Every test case (public, hidden, each circles band) of the questions the answer touches runs on
    its namespace: exactly the cases of its ``fails:`` fail (for a right answer only public cases, which
    carry no points: test_catalogue_expect_follows_fails), with its ``hints:`` in their messages. The
    catalogue replaces the tables of variants this file had (he_fan_out ... blank_stub, ok_*) and the
    public-test messages of the blank stubs, the ignored seed and swapped fans."""
    _, tests = master
    assert_catalogue_answer(NAME, entry, tests, _questions(entry))


@pytest.mark.parametrize("entry", ANSWERS)
def test_catalogue_expect_follows_fails(master, entry):
    configs, _, _ = master_parts(MASTER, markdown_answers=True)
    assert_expect_follows_fails(NAME, entry, configs, master[1])


# --------------------------------------------------------------------------- otter end to end

@pytest.mark.slow  # CI: test_committed_release assigns every master, test_grade_examples runs the zips
def test_otter_assign_and_run_end_to_end(tmp_path):
    from gradkit_tools.scan import scan_release

    result = tmp_path / "dist"
    t0 = time.perf_counter()
    otter("assign", str(MASTER), str(result), cwd=tmp_path, timeout=OTTER_TIMEOUT)  # its own test run needs full marks
    (zip_path,) = (result / "autograder").glob("*.zip")
    student_nb = result / "student" / f"{NAME}.ipynb"

    text = student_nb.read_text()
    assert "BEGIN SOLUTION" not in text and "hidden: true" not in text
    assert "keras.random.normal(tuple(shape), stddev" not in text  # no solution code
    leaks = scan_release(result / "student", MASTER)
    assert not leaks, "student release leaks:\n" + "\n".join(map(str, leaks))

    auto = [q for q in POINTS if q not in MANUAL]
    solved = grade(zip_path, result / "autograder" / f"{NAME}.ipynb", tmp_path / "solution", timeout=OTTER_TIMEOUT)
    for q in auto:
        assert solved[q]["score"] == solved[q]["max_score"] == POINTS[q], solved[q]
    assert solved["Public Tests"]["status"] == "passed"
    assert not MANUAL & set(solved)  # manual questions are graded by hand, not in results.json

    blank = grade(zip_path, student_nb, tmp_path / "student", timeout=OTTER_TIMEOUT)
    cases = master_parts(MASTER, markdown_answers=True)[2]
    for q in auto:
        assert blank[q]["score"] == 0 and blank[q]["max_score"] == POINTS[q], blank[q]
        assert "✅" not in blank[q]["output"], f"a test of {q} passes on the blank notebook:\n{blank[q]['output']}"
        assert blank[q]["output"].count("❌") == sum(1 for (qq, _, _, _) in cases.values() if qq == q), \
            blank[q]["output"]
    print(f"assign + 2 runs: {time.perf_counter() - t0:.0f} s")
