"""Assignment a3_dying_relu (dying ReLU, leaky ReLU): master tests and the otter pipeline.

* Fast part: the test cells of ``course/a3_dying_relu/a3_dying_relu.ipynb`` are pulled out of the
  master and run, outside otter, against the solution code and against typical wrong answers
  (a hard-coded slope, the slope applied to positive inputs, a NumPy leaky ReLU that autodiff cannot
  see, a detector reducing over the members axis or using the standard deviation, the exponent
  L - 1, blank stubs). Each wrong answer must fail exactly the tests written for it with an
  AssertionError; correct alternative implementations must pass everything.
* Study part (q4): the two banded hidden tests compute their collapse rates with
  ``gradkit_grader.course.a3_dying_relu.statistics`` under the per-submission seed; the solution earns full credit,
  wrong ``run_study`` variants fail exactly their tests (the four cases of a banded test count as
  that test, and a failed banded test earns none of its cases), and a slow seed sweep runs every
  hidden test under 20 other base seeds.
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
    assert_fails_exactly,
    assert_hidden_tests_self_contained,
    assert_question_cases,
    compiled_tests,
    failed_by_test,
    grade_timed,
    master_parts,
    master_path,
    namespace,
    otter,
    solution_passes,
    sweep_base_seeds,
)

NAME = "a3_dying_relu"
MASTER = master_path(NAME)
POINTS = {"q1": 3, "q2": 3, "q3": 2, "q4": 4}  # auto-graded questions
MANUAL = {"q5": 2, "q6": 2}
#: What the student notebook defines before the questions (the master's set-up cell).
PRELUDE = """
import math
import numpy as np
import keras
from keras import ops
from gradkit.data import LU_INTERVAL, lu_target
from gradkit.ensemble import DEFAULT_GRID_POINTS, DEFAULT_RTOL, build_ensemble_mlp, collapse_rate
from gradkit.stats import wilson_interval
RTOL = DEFAULT_RTOL
GRID = np.linspace(*LU_INTERVAL, DEFAULT_GRID_POINTS)
TARGET = "abs"
TARGET_RANGE = float(np.ptp(lu_target(TARGET, GRID)))
"""
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

# --------------------------------------------------------------------------- wrong answers

LEAKY_VARIANTS = {
    # name: (source, tests of q1 that must fail)
    "hard_coded_slope": ("""
def leaky_relu(x, negative_slope=0.01):
    x = ops.convert_to_tensor(x)
    return ops.where(x > 0, x, 0.01 * x)
""", {"test_leaky_relu_public", "test_leaky_relu_values", "test_leaky_relu_gradient"}),
    "slope_on_positives": ("""
def leaky_relu(x, negative_slope=0.01):
    x = ops.convert_to_tensor(x)
    return ops.where(x > 0, negative_slope * x, x)
""", {"test_leaky_relu_public", "test_leaky_relu_values", "test_leaky_relu_gradient"}),
    "slope_everywhere": ("""
def leaky_relu(x, negative_slope=0.01):
    return negative_slope * ops.convert_to_tensor(x)
""", {"test_leaky_relu_public", "test_leaky_relu_values", "test_leaky_relu_gradient"}),
    "plain_relu": ("""
def leaky_relu(x, negative_slope=0.01):
    return ops.relu(x)
""", {"test_leaky_relu_public", "test_leaky_relu_values", "test_leaky_relu_gradient"}),
    "numpy_breaks_autodiff": ("""
def leaky_relu(x, negative_slope=0.01):
    x = np.asarray(x)
    return np.where(x > 0, x, negative_slope * x)
""", {"test_leaky_relu_gradient"}),
    "blank_stub": ("""
def leaky_relu(x, negative_slope=0.01):
    ...
""", {"test_leaky_relu_public", "test_leaky_relu_values", "test_leaky_relu_gradient"}),
    "raises": ("""
def leaky_relu(x, negative_slope=0.01):
    raise NotImplementedError
""", {"test_leaky_relu_public", "test_leaky_relu_values", "test_leaky_relu_gradient"}),
    "flattens": ("""
def leaky_relu(x, negative_slope=0.01):
    x = ops.reshape(ops.convert_to_tensor(x), (-1,))
    return ops.where(x > 0, x, negative_slope * x)
""", {"test_leaky_relu_values"}),
    # correct alternatives
    "ok_maximum": ("""
def leaky_relu(x, negative_slope=0.01):
    x = ops.convert_to_tensor(x)
    return ops.maximum(x, negative_slope * x)
""", set()),
    "ok_relu_split": ("""
def leaky_relu(x, negative_slope=0.01):
    return ops.relu(x) - negative_slope * ops.relu(-ops.convert_to_tensor(x))
""", set()),
    "ok_library": ("""
def leaky_relu(x, negative_slope=0.01):
    return ops.leaky_relu(x, negative_slope=negative_slope)
""", set()),
}


@pytest.mark.backends
@pytest.mark.parametrize("variant", sorted(LEAKY_VARIANTS))
def test_q1_variants_fail_the_right_tests(master, variant):
    _, _, fns = master
    source, must_fail = LEAKY_VARIANTS[variant]
    ns = namespace(PRELUDE, source)
    failed = assert_fails_exactly(fns, _tests_of(fns, "q1"), ns, must_fail, variant)
    if variant == "hard_coded_slope":
        assert "hard-coded" in failed["test_leaky_relu_values"]
    if variant == "slope_on_positives":
        assert "positive inputs must pass through unchanged" in failed["test_leaky_relu_values"]
    if variant == "numpy_breaks_autodiff":
        assert "keras.ops" in failed["test_leaky_relu_gradient"]


DETECTOR_VARIANTS = {
    "members_axis": ("""
def is_collapsed(model_outputs, target_range, rtol=RTOL):
    out = np.asarray(model_outputs, dtype=float)
    return np.ptp(out, axis=1) <= rtol * target_range
""", {"test_is_collapsed_public", "test_is_collapsed_threshold", "test_is_collapsed_axis",
      "test_is_collapsed_networks"}),
    "std_not_range": ("""
def is_collapsed(model_outputs, target_range, rtol=RTOL):
    return np.std(np.asarray(model_outputs, dtype=float), axis=0) <= rtol * target_range
""", {"test_is_collapsed_threshold"}),
    "ignores_target_range": ("""
def is_collapsed(model_outputs, target_range, rtol=RTOL):
    return np.ptp(np.asarray(model_outputs, dtype=float), axis=0) <= rtol
""", {"test_is_collapsed_threshold"}),
    "hard_coded_rtol": ("""
def is_collapsed(model_outputs, target_range, rtol=RTOL):
    return np.ptp(np.asarray(model_outputs, dtype=float), axis=0) <= 1e-3 * target_range
""", {"test_is_collapsed_threshold"}),
    "exactly_constant_only": ("""
def is_collapsed(model_outputs, target_range, rtol=RTOL):
    return np.ptp(np.asarray(model_outputs, dtype=float), axis=0) == 0
""", {"test_is_collapsed_threshold"}),
    "returns_floats": ("""
def is_collapsed(model_outputs, target_range, rtol=RTOL):
    return (np.ptp(np.asarray(model_outputs, dtype=float), axis=0) <= rtol * target_range).astype(float)
""", {"test_is_collapsed_public", "test_is_collapsed_threshold"}),
    "blank_stub": ("""
def is_collapsed(model_outputs, target_range, rtol=RTOL):
    ...
""", {"test_is_collapsed_public", "test_is_collapsed_threshold", "test_is_collapsed_axis",
      "test_is_collapsed_networks"}),
    "ok_keras_ops": ("""
def is_collapsed(model_outputs, target_range, rtol=RTOL):
    out = ops.convert_to_tensor(np.asarray(model_outputs, dtype="float64"))
    spread = ops.max(out, axis=0) - ops.min(out, axis=0)
    return np.asarray(ops.convert_to_numpy(spread <= rtol * target_range))
""", set()),
    "ok_gradkit": ("""
def is_collapsed(model_outputs, target_range, rtol=RTOL):
    from gradkit.ensemble import is_collapsed as reference
    return reference(model_outputs, rtol=rtol, scale=target_range)
""", set()),
}


@pytest.mark.parametrize("variant", sorted(DETECTOR_VARIANTS))
def test_q2_variants_fail_the_right_tests(master, variant):
    _, _, fns = master
    source, must_fail = DETECTOR_VARIANTS[variant]
    ns = namespace(PRELUDE, source)
    failed = assert_fails_exactly(fns, _tests_of(fns, "q2"), ns, must_fail, variant)
    if variant == "members_axis":
        assert "axis 0" in failed["test_is_collapsed_axis"]


DEAD_VARIANTS = {
    "exponent_L_minus_1": ("return 1.0 - (1.0 - 0.5 ** width) ** (depth - 1)",
                           {"test_prob_dead_public", "test_prob_dead_formula"}),
    "one_layer_only": ("return 0.5 ** width", {"test_prob_dead_public", "test_prob_dead_formula"}),
    "union_bound": ("return min(1.0, depth * 0.5 ** width)", {"test_prob_dead_formula"}),
    "every_layer_dead": ("return 0.5 ** (width * depth) if depth else 0.0", {"test_prob_dead_formula"}),
    "blank_stub": ("...", {"test_prob_dead_public", "test_prob_dead_formula"}),
    "ok_loop": ("p = 0.0\n    for _ in range(depth):\n        p = p + (1 - p) * 2.0 ** -width\n    return p", set()),
}


@pytest.mark.parametrize("variant", sorted(DEAD_VARIANTS))
def test_q3_variants_fail_the_right_tests(master, variant):
    _, _, fns = master
    body, must_fail = DEAD_VARIANTS[variant]
    ns = namespace(PRELUDE, f"def prob_dead_at_point(width, depth):\n    {body}\n")
    assert_fails_exactly(fns, _tests_of(fns, "q3"), ns, must_fail, variant)


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


RUN_STUDY_VARIANTS = {
    # name: (source of run_study, q4 hidden tests that must fail; banded tests earn none of their cases)
    "ignores_epochs": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    return collapse_rate(activation, members=members, epochs=10, seed=seed, confidence=confidence,
                         detector=lambda o: is_collapsed(o, TARGET_RANGE), progress=progress)
""", {"test_run_study_relu", "test_run_study_leaky"}),
    "ignores_seed": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    return collapse_rate(activation, members=members, epochs=epochs, confidence=confidence,
                         detector=lambda o: is_collapsed(o, TARGET_RANGE), progress=progress)
""", {"test_run_study_relu"}),
    "ignores_members": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    return collapse_rate(activation, members=100, epochs=epochs, seed=seed, confidence=confidence,
                         detector=lambda o: is_collapsed(o, TARGET_RANGE), progress=progress)
""", {"test_run_study_public", "test_run_study_relu", "test_run_study_leaky"}),
    "ignores_confidence": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    return collapse_rate(activation, members=members, epochs=epochs, seed=seed,
                         detector=lambda o: is_collapsed(o, TARGET_RANGE), progress=progress)
""", {"test_run_study_relu", "test_run_study_leaky"}),
    "always_relu": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    return collapse_rate("relu", members=members, epochs=epochs, seed=seed, confidence=confidence,
                         detector=lambda o: is_collapsed(o, TARGET_RANGE), progress=progress)
""", {"test_run_study_leaky"}),
    "detector_reversed": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    return collapse_rate(activation, members=members, epochs=epochs, seed=seed, confidence=confidence,
                         detector=lambda o: ~is_collapsed(o, TARGET_RANGE), progress=progress)
""", {"test_run_study_relu", "test_run_study_leaky"}),
    "returns_rate": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    return collapse_rate(activation, members=members, epochs=epochs, seed=seed, confidence=confidence,
                         detector=lambda o: is_collapsed(o, TARGET_RANGE), progress=progress).rate
""", {"test_run_study_public", "test_run_study_relu", "test_run_study_leaky"}),
    "blank_stub": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    ...
""", {"test_run_study_public", "test_run_study_relu", "test_run_study_leaky"}),
    # correct alternatives
    "ok_default_detector": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    return collapse_rate(activation, members=members, epochs=epochs, seed=seed, target="abs",
                         confidence=confidence, progress=progress)
""", set()),
    "ok_summarize": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    from gradkit.ensemble import summarize_collapse
    res = collapse_rate(activation, members=members, epochs=epochs, seed=seed, confidence=confidence,
                        progress=progress)
    return summarize_collapse(res.outputs, scale=TARGET_RANGE, losses=res.losses, confidence=confidence,
                              detector=lambda o: is_collapsed(o, TARGET_RANGE), activation=res.activation)
""", set()),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(RUN_STUDY_VARIANTS))
def test_q4_variants_fail_the_right_tests(master, variant):
    _, solutions, fns = master
    source, must_fail = RUN_STUDY_VARIANTS[variant]
    ns = namespace(PRELUDE, solutions["q1"], solutions["q2"], source)
    failed = failed_by_test(fns, _tests_of(fns, "q4"), ns)
    assert set(failed) == must_fail, f"{variant}: failed {sorted(failed)}, expected {sorted(must_fail)}: {failed}"
    for test in must_fail - {"test_run_study_public"}:
        assert len(failed[test]) == BAND_STEPS, f"{variant}: {test} must earn no credit: {failed[test]}"
        assert all("hidden-test seed" in m for m in failed[test]), failed[test]


@pytest.mark.slow
def test_seed_sweep(master, monkeypatch):
    """The solution passes every hidden test under 20 other base seeds (tol["seed"] replaced)."""
    _, solutions, fns = master
    sweep_base_seeds(monkeypatch, fns, [n for n, (_, h, _, _) in fns.items() if h],
                     namespace(PRELUDE, *(solutions[q] for q in POINTS)), range(100, 120))



# --------------------------------------------------------------------------- otter end to end

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
