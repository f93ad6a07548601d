"""Assignment a3_dying_relu (dying ReLU, leaky ReLU): master tests and the otter pipeline.

* Fast part: the test cells of ``solutions/a3_dying_relu/a3_dying_relu.ipynb`` are pulled out of the
  master and run, outside otter, against the solution code and against typical wrong answers
  (a hard-coded slope, the slope applied to positive inputs, a NumPy leaky ReLU that autodiff cannot
  see, a detector reducing over the members axis or using the standard deviation, the exponent
  L - 1, blank stubs). Each wrong answer must fail exactly the tests written for it with an
  AssertionError; correct alternative implementations must pass everything.
* Study part: the reference counts baked into grading.yml are re-measured with gradkit's own
  activations and detector, and the q4 hidden tests are run on the solution.
* End-to-end part: the real ``otter assign`` on the master, then the real ``otter run`` with the
  generated autograder zip on the solution notebook (full marks) and on the student notebook
  (zero on every test).
"""
from __future__ import annotations

import re
import time

import nbformat
import pytest
import yaml

from _masters import (assert_fails_exactly, assert_question_cases, compiled_tests, failures,
                      grade_timed, master_parts, master_path, namespace, otter, run_test)

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


@pytest.fixture(scope="module")
def master():
    configs, solutions, tests = master_parts(MASTER)
    return configs, solutions, compiled_tests(tests)


def _tests_of(fns, question, hidden=None):
    return [n for n, (q, h, _, _) in fns.items() if q == question and (hidden is None or h == hidden)]


# --------------------------------------------------------------------------- layout and config

def test_master_layout():
    configs, solutions, tests = master_parts(MASTER)
    assert {q: c.get("points") for q, c in configs.items()} == {**POINTS, **MANUAL}
    assert all(configs[q].get("manual") is True for q in MANUAL)
    assert set(solutions) == set(POINTS)
    assert_question_cases(tests, POINTS)
    for name, (_, hidden, _, src) in tests.items():
        body = src.split('""" # END TEST CONFIG\n')[-1]
        lines = body.splitlines()
        assert lines[0].startswith("def test_"), name
        if "tol[" in body:  # the form `gradkit release` bakes, as the first lines
            assert lines[1].strip() == "from gradkit.config import tolerances", name
            assert lines[2].strip() == f'tol = tolerances("{NAME}")', name
        for line in lines:
            assert not re.match(r"^(import|from)\s", line), f"{name}: module-level import {line!r}"
    nb = nbformat.read(str(MASTER), as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    config = yaml.safe_load(nb.cells[0].source.split("\n", 1)[1])
    assert config["export_cell"]["pdf"] is True and config["export_cell"]["require_no_pdf_ack"] is True and config["tests"] == {"files": False, "ok_format": False}


def test_grading_section_complete_and_consistent():
    """Every tol[...] key a test reads exists, every key is used, and the collapse definition is gradkit's."""
    from gradkit.config import load_config, tolerances
    from gradkit.ensemble import DEFAULT_GRID_POINTS, DEFAULT_RTOL

    tol = tolerances(NAME)
    used = set()
    for _, _, _, src in master_parts(MASTER)[2].values():
        used |= set(re.findall(r"""tol\[\s*["'](\w+)["']\s*\]""", src))
    assert used <= set(tol), f"keys missing in grading.yml: {sorted(used - set(tol))}"
    assert set(tol) <= used, f"unused keys in grading.yml: {sorted(set(tol) - used)}"
    cfg = load_config()
    assert tol["rtol"] == cfg["collapse"]["rtol"] == DEFAULT_RTOL
    assert tol["grid_points"] == cfg["collapse"]["grid_points"] == DEFAULT_GRID_POINTS
    assert tol["default_slope"] in tol["slopes"]
    assert 0 < tol["margin"] < 1


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
def test_solution_passes_fast_tests_within_budget(master):
    _, solutions, fns = master
    ns = namespace(PRELUDE, *(solutions[q] for q in FAST))
    times = {}
    for q in FAST:
        for name in _tests_of(fns, q):
            t0 = time.perf_counter()
            message = run_test(fns[name][3], ns)
            times[name] = time.perf_counter() - t0
            assert message is None, f"{name} fails on the solution: {message}"
    print({k: round(v, 2) for k, v in times.items()})
    for name, t in times.items():
        assert fns[name][1] or t < 10, f"public test {name} takes {t:.1f} s (must be < 10 s)"


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

def test_reference_counts_still_hold():
    """Re-measure grading.yml's reference counts with gradkit's own activations and detector.

    The counts are baked (not recomputed inside the hidden test, which would double its time). On the
    machine that measured them the run is deterministic and reproduces them exactly; elsewhere (other
    CPU, other XLA) a few borderline members may flip, which the acceptance interval absorbs.
    """
    from gradkit.config import tolerances
    from gradkit.ensemble import collapse_rate
    from gradkit.stats import wilson_interval

    tol = tolerances(NAME)
    n, conf = tol["study_members"], tol["study_confidence"]
    counts = {}
    for act, key in (("relu", "relu_ref_count"), ("leaky_relu", "leaky_ref_count")):
        res = collapse_rate(act, members=n, epochs=tol["study_epochs"], seed=tol["study_seed"], progress=False)
        counts[act] = res.count
        assert res.n == n and not res.diverged.any()
        lo, hi = wilson_interval(tol[key], n, conf)
        assert lo <= res.count / n <= hi, f"{act}: {res.count}/{n} no longer matches grading.yml {key}={tol[key]}"
    print("re-measured reference counts:", counts, "baked:", tol["relu_ref_count"], tol["leaky_ref_count"])
    assert wilson_interval(counts["leaky_relu"], n, conf)[1] < wilson_interval(counts["relu"], n, conf)[0]


RUN_STUDY_VARIANTS = {
    # name: (source of run_study, q4 hidden tests that must fail)
    "ignores_epochs": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    return collapse_rate(activation, members=members, epochs=10, seed=seed, confidence=confidence,
                         detector=lambda o: is_collapsed(o, TARGET_RANGE), progress=progress)
""", {"test_run_study_leaky"}),
    "blank_stub": ("""
def run_study(activation, members=1000, *, epochs=10, seed=0, confidence=0.95, progress=True):
    ...
""", {"test_run_study_public", "test_run_study_relu", "test_run_study_leaky"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(RUN_STUDY_VARIANTS))
def test_q4_variants_fail_the_right_tests(master, variant):
    _, solutions, fns = master
    source, must_fail = RUN_STUDY_VARIANTS[variant]
    ns = namespace(PRELUDE, solutions["q1"], solutions["q2"], source)
    names = [n for n in _tests_of(fns, "q4") if variant != "ignores_epochs" or n == "test_run_study_leaky"]
    failed = failures(fns, names, ns)
    assert set(failed) == must_fail & set(names), f"{variant}: failed {sorted(failed)}: {failed}"


# --------------------------------------------------------------------------- otter end to end

def test_otter_assign_and_run_end_to_end(tmp_path):
    """Solution: full marks (q1-q4, every case, q4 included: its hidden tests run the real study).
    Student notebook: zero on every question, every case failing."""
    from gradkit.scan import scan_release

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
