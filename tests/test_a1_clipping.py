"""Assignment a1_clipping (exploding gradients, gradient clipping): master tests and the otter pipeline.

* Fast part: the test cells of ``course/a1_clipping/a1_clipping.ipynb`` are extracted and run,
  outside otter, against the solution and against the typical wrong answers. Each wrong answer
  must fail exactly the hidden tests written for it, with an ``AssertionError`` (per-tensor norm
  where the global norm was asked, value clipping where norm clipping was asked, squared norm,
  summed norms, NaN on zero gradients, an optimizer that does not clip, ...), while correct
  alternative implementations pass every test.
* Hidden tests draw their inputs from the per-submission seed (``gradkit_grader.seeding``); q2's
  convergence test is 4 band cases (``test_optimizer_converges_band_1..4``, ``gradkit_grader.bands``)
  that count as one test here: a wrong answer must fail all four, a correct one pass all four.
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
    assert_hidden_tests_self_contained,
    assert_question_cases,
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


def assert_fails_exactly(tests: dict, names, ns: dict, must_fail: set, variant: str) -> dict:
    """Run ``names`` (band cases grouped) on ``ns``; exactly ``must_fail`` may fail, all of their cases."""
    failed = grouped_failures(tests, names, ns)
    assert set(failed) == must_fail, f"{variant}: failed {sorted(failed)}, expected {sorted(must_fail)}: {failed}"
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

# --------------------------------------------------------------------------- wrong answers, q1

NORM_TESTS = ["test_global_norm_matches_definition", "test_global_norm_below_threshold_and_zero",
              "test_global_norm_bound_and_direction", "test_training_loop_matches_keras"]

GLOBAL_NORM_VARIANTS = {
    # name: (source of clip_by_global_norm, hidden tests that must fail)
    "per_tensor_norm": ("""
def clip_by_global_norm(grads, max_norm):
    out = []
    for g in grads:
        g = ops.convert_to_tensor(g)
        out.append(g * (max_norm / ops.maximum(ops.sqrt(ops.sum(g * g)), max_norm)))
    return out
""", {"test_global_norm_matches_definition", "test_global_norm_bound_and_direction",
      "test_training_loop_matches_keras"}),
    "clips_values_instead": ("""
def clip_by_global_norm(grads, max_norm):
    return [ops.clip(ops.convert_to_tensor(g), -max_norm, max_norm) for g in grads]
""", {"test_global_norm_matches_definition", "test_global_norm_bound_and_direction",
      "test_training_loop_matches_keras"}),
    "squared_norm": ("""
def clip_by_global_norm(grads, max_norm):
    grads = [ops.convert_to_tensor(g) for g in grads]
    sq = sum(ops.sum(ops.square(g)) for g in grads)
    return [g * (max_norm / ops.maximum(sq, max_norm)) for g in grads]
""", set(NORM_TESTS)),
    "sum_of_norms": ("""
def clip_by_global_norm(grads, max_norm):
    grads = [ops.convert_to_tensor(g) for g in grads]
    total = sum(ops.sqrt(ops.sum(ops.square(g))) for g in grads)
    return [g * (max_norm / ops.maximum(total, max_norm)) for g in grads]
""", set(NORM_TESTS)),
    "always_normalises": ("""
def clip_by_global_norm(grads, max_norm):
    grads = [ops.convert_to_tensor(g) for g in grads]
    total = ops.sqrt(sum(ops.sum(ops.square(g)) for g in grads))
    return [g * (max_norm / total) for g in grads]
""", {"test_global_norm_below_threshold_and_zero"}),
    "divides_by_zero_norm": ("""
def clip_by_global_norm(grads, max_norm):
    grads = [ops.convert_to_tensor(g) for g in grads]
    total = float(ops.convert_to_numpy(ops.sqrt(sum(ops.sum(ops.square(g)) for g in grads))))
    return [g * min(1.0, max_norm / total) for g in grads]
""", {"test_global_norm_below_threshold_and_zero"}),
    "blank_stub": ("""
def clip_by_global_norm(grads, max_norm):
    ...
""", set(NORM_TESTS)),
    "raises": ("""
def clip_by_global_norm(grads, max_norm):
    raise ValueError("not done")
""", set(NORM_TESTS)),
    "returns_nan": ("""
def clip_by_global_norm(grads, max_norm):
    return [ops.convert_to_tensor(g) * float("nan") for g in grads]
""", set(NORM_TESTS)),
    "returns_one_tensor": ("""
def clip_by_global_norm(grads, max_norm):
    flat = ops.concatenate([ops.reshape(ops.convert_to_tensor(g), (-1,)) for g in grads])
    return flat * (max_norm / ops.maximum(ops.norm(flat), max_norm))
""", set(NORM_TESTS)),
    # correct alternatives: must pass everything
    "ok_concat_norm_where": ("""
def clip_by_global_norm(grads, max_norm):
    grads = [ops.convert_to_tensor(g) for g in grads]
    n = ops.norm(ops.concatenate([ops.reshape(g, (-1,)) for g in grads]))
    return [ops.where(n > max_norm, g * (max_norm / n), g) for g in grads]
""", set()),
    "ok_numpy_float64": ("""
def clip_by_global_norm(grads, max_norm):
    arrays = [np.asarray(ops.convert_to_numpy(g), dtype=np.float64) for g in grads]
    n = np.sqrt(sum(float(np.sum(a * a)) for a in arrays))
    return tuple(a * (max_norm / max(n, max_norm)) for a in arrays)
""", set()),
}


@pytest.mark.backends
@pytest.mark.parametrize("variant", sorted(GLOBAL_NORM_VARIANTS))
def test_q1_global_norm_variants_fail_the_right_tests(master, variant):
    _, tests = master
    source, must_fail = GLOBAL_NORM_VARIANTS[variant]
    ns = namespace(PRELUDE, source)
    failed = assert_fails_exactly(tests, NORM_TESTS, ns, must_fail, variant)
    if variant in ("per_tensor_norm", "clips_values_instead"):
        assert "own norm" in failed["test_global_norm_matches_definition"]  # the hint names the mistake
    if variant == "squared_norm":
        assert "squared global norm" in failed["test_global_norm_matches_definition"]
    if variant == "sum_of_norms":
        assert "added up the tensors' norms" in failed["test_global_norm_matches_definition"]
    if variant == "divides_by_zero_norm":
        assert "ZeroDivisionError" in failed["test_global_norm_below_threshold_and_zero"]


VALUE_VARIANTS = {
    "upper_bound_only": "def clip_by_value(grads, limit):\n    return [ops.minimum(g, limit) for g in grads]\n",
    "clips_to_zero_limit": "def clip_by_value(grads, limit):\n    return [ops.clip(g, 0.0, limit) for g in grads]\n",
    "norm_instead": ("def clip_by_value(grads, limit):\n"
                     "    return [g * (limit / ops.maximum(ops.norm(ops.reshape(g, (-1,))), limit)) for g in grads]\n"),
    "blank_stub": "def clip_by_value(grads, limit):\n    ...\n",
}


@pytest.mark.backends
@pytest.mark.parametrize("variant", sorted(VALUE_VARIANTS))
def test_q1_value_variants_fail(master, variant):
    _, tests = master
    ns = namespace(PRELUDE, VALUE_VARIANTS[variant])
    assert run_test(tests["test_value_matches_definition"][3], ns) is not None


@pytest.mark.backends
def test_q1_value_alternative_passes(master):
    _, tests = master
    ns = namespace(PRELUDE, "def clip_by_value(grads, limit):\n"
                            "    return [ops.where(ops.abs(g) > limit, ops.sign(g) * limit, g) for g in grads]\n")
    assert run_test(tests["test_value_matches_definition"][3], ns) is None
    assert run_test(tests["test_value_public"][3], ns) is None


# --------------------------------------------------------------------------- wrong answers, q2

Q2_TESTS = ["test_optimizer_configuration", "test_optimizer_converges"]

OPTIMIZER_VARIANTS = {
    # name: (body of make_clipped_optimizer, hidden tests that must fail, tests not asserted)
    "no_clipping": ("return keras.optimizers.SGD(learning_rate=0.01)", set(Q2_TESTS), set()),
    "threshold_too_small": ("return keras.optimizers.SGD(learning_rate=0.01, clipnorm=1e-3)",
                            {"test_optimizer_converges"}, set()),
    "threshold_too_large": ("return keras.optimizers.SGD(learning_rate=0.01, clipvalue=1000.0)",
                            {"test_optimizer_converges"}, set()),
    "smaller_learning_rate": ("return keras.optimizers.SGD(learning_rate=1e-4, clipnorm=1.0)",
                              set(Q2_TESTS), set()),
    "adam": ("return keras.optimizers.Adam(clipnorm=1.0)", set(Q2_TESTS), set()),
    "blank_stub": ("...", set(Q2_TESTS), set()),
    "shared_instance": ("return SHARED", {"test_optimizer_configuration"}, {"test_optimizer_converges"}),
    "ok_global_clipnorm": ("return keras.optimizers.SGD(learning_rate=0.01, global_clipnorm=1.0)", set(), set()),
    "ok_clipnorm_2": ("return keras.optimizers.SGD(clipnorm=2.0)", set(), set()),
}


@pytest.mark.backends
@pytest.mark.parametrize("variant", sorted(OPTIMIZER_VARIANTS))
def test_q2_variants_fail_the_right_tests(master, variant):
    _, tests = master
    body, must_fail, unchecked = OPTIMIZER_VARIANTS[variant]
    ns = namespace(PRELUDE, "SHARED = keras.optimizers.SGD(learning_rate=0.01, clipnorm=1.0)\n"
                            f"def make_clipped_optimizer():\n    {body}\n")
    failed = assert_fails_exactly(tests, [n for n in Q2_TESTS if n not in unchecked], ns, must_fail, variant)
    if variant == "no_clipping":
        assert "NaN" in failed["test_optimizer_converges"]


@pytest.mark.backends
def test_q2_threshold_too_large_earns_three_bands(master):
    """clipvalue=20 overshoots: final MSE 25-85 (30 fits measured), so the worst of 3 runs lies in the
    3/4 band [25, 190]: bands 1-3 pass, band 4 fails with a message in MSE units."""
    from gradkit_grader.bands import clear_memo

    _, tests = master
    ns = namespace(PRELUDE, "def make_clipped_optimizer():\n"
                            "    return keras.optimizers.SGD(learning_rate=0.01, clipvalue=20.0)\n")
    clear_memo()
    results = {c: run_test(tests[c][3], ns) for c in cases_of(tests, "test_optimizer_converges")}
    assert [m is None for m in results.values()] == [True, True, True, False], results
    message = results["test_optimizer_converges_band_4"]
    assert "part 4/4" in message and "full credit at <= 25" in message and "hidden-test seed" in message
    assert run_test(tests["test_optimizer_configuration"][3], ns) is None



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
    from gradkit_tools.course import tolerances

    _, tests = master
    tol = tolerances(NAME)
    right = namespace(PRELUDE, GLOBAL_NORM_VARIANTS["ok_concat_norm_where"][0])
    wrong = namespace(PRELUDE, GLOBAL_NORM_VARIANTS["per_tensor_norm"][0])
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
