"""Assignment a2_init (Glorot / He initialisation): master tests and the otter pipeline.

* Fast part: the test cells of ``course/a2_init/a2_init.ipynb`` are extracted and run, outside
  otter, against the solution, against correct alternative implementations (NumPy draws, Keras'
  own initializers where they draw the same distribution) and against the typical wrong answers.
  Each wrong answer must fail the hidden tests written for it with an ``AssertionError``: He with
  the fan-out, the Glorot-uniform limit used as a normal's standard deviation, a truncated normal,
  a Glorot init without the receptive field, swapped fans, a seed that is ignored, ...
* Statistical part: the bounds of tolerances.yml are re-derived from their stated formulas, the
  p-values of gradkit_grader.course.a2_init.statistics reject exactly outside the Wilson / chi-square intervals, and
  (slow) the solution passes every hidden test under 20 other base seeds (per-submission seeds:
  gradkit_grader.seeding). The circles training test is banded (4 cases); a variant failing it fails all 4.
* End-to-end part: the real ``otter assign`` on the master (with its own test run, which requires
  full marks), then the real ``otter run`` with the generated autograder zip on the solution
  notebook (full marks on every question) and on the student notebook (zero on every test).
"""
from __future__ import annotations

import inspect
import math
import re
import time

import nbformat
import numpy as np
import pytest

from _masters import (
    assert_fails_exactly,
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

NAME = "a2_init"
MASTER = master_path(NAME)
POINTS = {"q1": 2, "q2": 2, "q3": 1, "q4": 5, "q5": 4, "q6": 2, "q7": 2}
MANUAL = {"q2", "q6", "q7"}
PRELUDE = "import math\nimport functools\nimport numpy as np\nimport keras\nfrom keras import ops\n"
OTTER_TIMEOUT = 1200


@pytest.fixture(scope="module")
def master():
    configs, solutions, tests = master_parts(MASTER, markdown_answers=True)
    source = "".join(solutions[q] for q in ("q1", "q3", "q4", "q5"))
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
    """Every tol[...] key a test (or its statistic in gradkit_grader.course.a2_init.statistics) reads exists in
    course/a2_init/tolerances.yml, and every key there (budgets aside) is used."""
    import gradkit_grader.course.a2_init.statistics as checks
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    _, _, tests = master_parts(MASTER, markdown_answers=True)
    used = set()
    for src in [entry[-1] for entry in tests.values()] + [inspect.getsource(checks)]:
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

    from gradkit.initializers import compute_fans
    from gradkit.stats import variance_interval
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



# --------------------------------------------------------------------------- wrong answers, q3-q5

DIST = {"glorot_normal": "test_glorot_normal_distribution", "glorot_uniform": "test_glorot_uniform_distribution",
        "he_normal": "test_he_normal_distribution", "he_uniform": "test_he_uniform_distribution"}
RELU = {"test_glorot_shrinks_relu_activations", "test_he_keeps_relu_activations"}
CIRCLES = {f"test_glorot_uniform_trains_deep_tanh_net_band_{k}" for k in range(1, 5)}  # one banded test
FANS = "test_fans_all_shapes"
INIT_TESTS = set(DIST.values()) | RELU | {FANS}  # the circles test is run only where a variant names it

INIT_VARIANTS = {
    # name: (replacement source, hidden tests that must fail, message fragment of the first)
    "he_fan_out": ("""
def he_normal(shape, dtype="float32", seed=None):
    return keras.random.normal(shape, stddev=math.sqrt(2.0 / fans(shape)[1]), dtype=dtype, seed=seed)
def he_uniform(shape, dtype="float32", seed=None):
    limit = math.sqrt(6.0 / fans(shape)[1])
    return keras.random.uniform(shape, minval=-limit, maxval=limit, dtype=dtype, seed=seed)
""", {DIST["he_normal"], DIST["he_uniform"]}, "as if you used fan_out instead of fan_in"),
    "glorot_normal_with_uniform_limit": ("""
def glorot_normal(shape, dtype="float32", seed=None):
    fi, fo = fans(shape)
    return keras.random.normal(shape, stddev=math.sqrt(6.0 / (fi + fo)), dtype=dtype, seed=seed)
""", {DIST["glorot_normal"], "test_glorot_shrinks_relu_activations"},
        "uniform limit sqrt(6/(fan_in + fan_out)) as the standard"),
    "he_normal_with_uniform_limit": ("""
def he_normal(shape, dtype="float32", seed=None):
    return keras.random.normal(shape, stddev=math.sqrt(6.0 / fans(shape)[0]), dtype=dtype, seed=seed)
""", {DIST["he_normal"], "test_he_keeps_relu_activations"}, "uniform limit sqrt(6/fan_in)"),
    "truncated_normal_uncorrected": ("""
def glorot_normal(shape, dtype="float32", seed=None):
    fi, fo = fans(shape)
    return keras.random.truncated_normal(shape, stddev=math.sqrt(2.0 / (fi + fo)), dtype=dtype, seed=seed)
def he_normal(shape, dtype="float32", seed=None):
    return keras.random.truncated_normal(shape, stddev=math.sqrt(2.0 / fans(shape)[0]), dtype=dtype, seed=seed)
""", {DIST["glorot_normal"], DIST["he_normal"]} | RELU, "truncated normal without dividing"),
    "truncated_normal_like_keras": ("""
def glorot_normal(shape, dtype="float32", seed=None):
    return keras.initializers.GlorotNormal(seed=seed)(shape, dtype=dtype)
def he_normal(shape, dtype="float32", seed=None):
    return keras.initializers.HeNormal(seed=seed)(shape, dtype=dtype)
""", {DIST["glorot_normal"], DIST["he_normal"]}, "Draw from a plain normal"),
    "normal_where_uniform_asked": ("""
def glorot_uniform(shape, dtype="float32", seed=None):
    return glorot_normal(shape, dtype=dtype, seed=seed)
def he_uniform(shape, dtype="float32", seed=None):
    return he_normal(shape, dtype=dtype, seed=seed)
""", {DIST["glorot_uniform"], DIST["he_uniform"]}, "exceeds the limit"),
    "uniform_where_normal_asked": ("""
def glorot_normal(shape, dtype="float32", seed=None):
    return glorot_uniform(shape, dtype=dtype, seed=seed)
def he_normal(shape, dtype="float32", seed=None):
    return he_uniform(shape, dtype=dtype, seed=seed)
""", {DIST["glorot_normal"], DIST["he_normal"]}, "Draw from a plain normal"),
    "lecun_for_he": ("""
def he_normal(shape, dtype="float32", seed=None):
    return keras.random.normal(shape, stddev=math.sqrt(1.0 / fans(shape)[0]), dtype=dtype, seed=seed)
def he_uniform(shape, dtype="float32", seed=None):
    limit = math.sqrt(3.0 / fans(shape)[0])
    return keras.random.uniform(shape, minval=-limit, maxval=limit, dtype=dtype, seed=seed)
""", {DIST["he_normal"], DIST["he_uniform"], "test_he_keeps_relu_activations"}, "1/fan_in (LeCun)"),
    "glorot_for_he": ("""
def he_normal(shape, dtype="float32", seed=None):
    return glorot_normal(shape, dtype=dtype, seed=seed)
def he_uniform(shape, dtype="float32", seed=None):
    return glorot_uniform(shape, dtype=dtype, seed=seed)
""", {DIST["he_normal"], DIST["he_uniform"], "test_he_keeps_relu_activations"}, "Glorot's 2/(fan_in + fan_out)"),
    "glorot_half_variance": ("""
def glorot_normal(shape, dtype="float32", seed=None):
    fi, fo = fans(shape)
    return keras.random.normal(shape, stddev=math.sqrt(1.0 / (fi + fo)), dtype=dtype, seed=seed)
def glorot_uniform(shape, dtype="float32", seed=None):
    fi, fo = fans(shape)
    limit = math.sqrt(3.0 / (fi + fo))
    return keras.random.uniform(shape, minval=-limit, maxval=limit, dtype=dtype, seed=seed)
""", {DIST["glorot_normal"], DIST["glorot_uniform"], "test_glorot_shrinks_relu_activations"},
        "1/(fan_in + fan_out) instead"),
    "std_as_uniform_limit": ("""
def glorot_uniform(shape, dtype="float32", seed=None):
    fi, fo = fans(shape)
    limit = math.sqrt(2.0 / (fi + fo))
    return keras.random.uniform(shape, minval=-limit, maxval=limit, dtype=dtype, seed=seed)
""", {"test_glorot_shrinks_relu_activations", DIST["glorot_uniform"]},
        "standard deviation sqrt(2/(fan_in + fan_out)) as the uniform limit"),
    "no_square_root": ("""
def he_normal(shape, dtype="float32", seed=None):
    return keras.random.normal(shape, stddev=2.0 / fans(shape)[0], dtype=dtype, seed=seed)
""", {DIST["he_normal"], "test_he_keeps_relu_activations"}, "no square root"),
    "positive_uniform": ("""
def glorot_uniform(shape, dtype="float32", seed=None):
    fi, fo = fans(shape)
    return keras.random.uniform(shape, minval=0.0, maxval=math.sqrt(6.0 / (fi + fo)), dtype=dtype, seed=seed)
""", {"test_glorot_shrinks_relu_activations", DIST["glorot_uniform"]}, "must be centred at 0"),
    "no_receptive_field": ("""
def fans(shape):
    return int(shape[-2]), int(shape[-1])
""", set(DIST.values()) | {FANS}, "without the receptive field"),
    "fans_swapped": ("""
def fans(shape):
    r = int(np.prod(shape[:-2]))
    return int(shape[-1]) * r, int(shape[-2]) * r
""", {DIST["he_normal"], DIST["he_uniform"], FANS}, "fan_out instead of fan_in"),
    "receptive_field_on_fan_in_only": ("""
def fans(shape):
    r = int(np.prod(shape[:-2]))
    return int(shape[-2]) * r, int(shape[-1])
""", {DIST["glorot_normal"], DIST["glorot_uniform"], FANS}, None),
    "seed_ignored": ("""
def he_normal(shape, dtype="float32", seed=None):
    return keras.random.normal(shape, stddev=math.sqrt(2.0 / fans(shape)[0]), dtype=dtype)
""", {DIST["he_normal"]}, "pass seed=seed on to keras.random"),
    "seed_hard_coded": ("""
def glorot_normal(shape, dtype="float32", seed=None):
    fi, fo = fans(shape)
    return keras.random.normal(shape, stddev=math.sqrt(2.0 / (fi + fo)), dtype=dtype, seed=0)
""", {DIST["glorot_normal"], "test_glorot_shrinks_relu_activations"}, "returned the same tensor"),
    "float64": ("""
def he_uniform(shape, dtype="float32", seed=None):
    limit = math.sqrt(6.0 / fans(shape)[0])
    return np.random.default_rng(seed).uniform(-limit, limit, size=shape)
""", {DIST["he_uniform"]}, "returned dtype float64"),
    "returns_nan": ("""
def glorot_uniform(shape, dtype="float32", seed=None):
    return keras.ops.full(shape, float("nan"), dtype=dtype)
""", {"test_glorot_shrinks_relu_activations", DIST["glorot_uniform"]} | CIRCLES, "NaN"),
    "glorot_uniform_is_uniform_0_1": ("""
def glorot_uniform(shape, dtype="float32", seed=None):
    return keras.random.uniform(shape, minval=0.0, maxval=1.0, dtype=dtype, seed=seed)
""", {"test_glorot_shrinks_relu_activations", DIST["glorot_uniform"]} | CIRCLES, "must be centred at 0"),
    "raises": ("""
def he_uniform(shape, dtype="float32", seed=None):
    raise NotImplementedError("later")
""", {DIST["he_uniform"], "test_he_keeps_relu_activations"}, "NotImplementedError"),
    "blank_stubs": ("""
def fans(shape):
    ...
def glorot_uniform(shape, dtype="float32", seed=None):
    ...
def glorot_normal(shape, dtype="float32", seed=None):
    ...
def he_normal(shape, dtype="float32", seed=None):
    ...
def he_uniform(shape, dtype="float32", seed=None):
    ...
""", INIT_TESTS | CIRCLES, None),
    # correct alternatives: must pass everything
    "ok_numpy_generator": ("""
def fans(shape):
    *spatial, n_in, n_out = shape
    r = math.prod(spatial)
    return n_in * r, n_out * r
def glorot_normal(shape, dtype="float32", seed=None):
    fi, fo = fans(shape)
    return np.random.default_rng(seed).normal(0.0, math.sqrt(2 / (fi + fo)), size=shape).astype(dtype)
def glorot_uniform(shape, dtype="float32", seed=None):
    fi, fo = fans(shape)
    limit = math.sqrt(6 / (fi + fo))
    return np.random.default_rng(seed).uniform(-limit, limit, size=shape).astype(dtype)
def he_normal(shape, dtype="float32", seed=None):
    return np.random.default_rng(seed).normal(0.0, math.sqrt(2 / fans(shape)[0]), size=shape).astype(dtype)
def he_uniform(shape, dtype="float32", seed=None):
    limit = math.sqrt(6 / fans(shape)[0])
    return np.random.default_rng(seed).uniform(-limit, limit, size=shape).astype(dtype)
""", set(), None),
    "ok_keras_variance_scaling": ("""
def glorot_normal(shape, dtype="float32", seed=None):
    return keras.initializers.VarianceScaling(1.0, "fan_avg", "untruncated_normal", seed=seed)(shape, dtype=dtype)
def glorot_uniform(shape, dtype="float32", seed=None):
    return keras.initializers.GlorotUniform(seed=seed)(shape, dtype=dtype)
def he_normal(shape, dtype="float32", seed=None):
    return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=seed)(shape, dtype=dtype)
def he_uniform(shape, dtype="float32", seed=None):
    return keras.initializers.HeUniform(seed=seed)(shape, dtype=dtype)
""", set(), None),
}


@pytest.mark.parametrize("variant", sorted(INIT_VARIANTS))
def test_initializer_variants_fail_the_right_tests(master, variant):
    source, tests = master
    replacement, must_fail, fragment = INIT_VARIANTS[variant]
    ns = _with(source, replacement)
    names = INIT_TESTS | (CIRCLES if CIRCLES & must_fail else set())
    changed = set(re.findall(r"^def (\w+)\(", replacement, re.M))
    if "fans" not in changed:  # tests that call none of the changed functions pass as on the solution
        names = {n for n in names if changed & set(inspect.signature(tests[n][3]).parameters)}
    failed = assert_fails_exactly(tests, sorted(names), ns, must_fail, variant)
    if fragment:
        assert any(fragment in m for m in failed.values()), f"{variant}: no message says {fragment!r}: {failed}"


def test_public_tests_catch_the_blank_and_the_ignored_seed(master):
    source, tests = master
    blank = _with(source, INIT_VARIANTS["blank_stubs"][0] + "\ndef activation_std(model, x):\n    ...\n")
    for name in ("test_fans_public", "test_glorot_public", "test_he_public", "test_activation_std_public"):
        assert "returned None" in run_test(tests[name][3], blank), name
    ignored = _with(source, INIT_VARIANTS["seed_ignored"][0])
    assert "pass seed=seed" in run_test(tests["test_he_public"][3], ignored)
    swapped = _with(source, INIT_VARIANTS["fans_swapped"][0])
    assert "swapped" in run_test(tests["test_fans_public"][3], swapped)


# --------------------------------------------------------------------------- wrong answers, q1

STD_TESTS = ["test_activation_std_matches_reference_mlp", "test_activation_std_counts_every_layer"]

STD_VARIANTS = {
    "reversed": ("""
def activation_std(model, x):
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    outs = keras.Model(model.inputs[0], [l.output for l in layers])(x)
    return [float(np.std(ops.convert_to_numpy(o))) for o in outs][::-1]
""", set(STD_TESTS)),
    "mean_of_per_unit_stds": ("""
def activation_std(model, x):
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    outs = keras.Model(model.inputs[0], [l.output for l in layers])(x)
    return [float(np.std(ops.convert_to_numpy(o), axis=0).mean()) for o in outs]
""", set(STD_TESTS)),
    "input_prepended": ("""
def activation_std(model, x):
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    outs = keras.Model(model.inputs[0], [l.output for l in layers])(x)
    return [float(np.std(x))] + [float(np.std(ops.convert_to_numpy(o))) for o in outs]
""", set(STD_TESTS)),
    "hidden_layers_only": ("""
def activation_std(model, x):
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)][:-1]
    outs = keras.Model(model.inputs[0], [l.output for l in layers])(x)
    return [float(np.std(ops.convert_to_numpy(o))) for o in outs]
""", set(STD_TESTS)),
    "dense_layers_only": ("""
def activation_std(model, x):
    layers = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    outs = keras.Model(model.inputs[0], [l.output for l in layers])(x)
    return [float(np.std(ops.convert_to_numpy(o))) for o in outs]
""", {"test_activation_std_counts_every_layer"}),
    "kernel_std_instead": ("""
def activation_std(model, x):
    return [float(np.std(ops.convert_to_numpy(l.kernel))) for l in model.layers if hasattr(l, "kernel")]
""", set(STD_TESTS)),
    "blank_stub": ("def activation_std(model, x):\n    ...\n", set(STD_TESTS)),
    "ok_layer_loop_ddof1": ("""
def activation_std(model, x):
    h, out = ops.convert_to_tensor(x), []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        h = layer(h)
        out.append(np.std(ops.convert_to_numpy(h), ddof=1))
    return np.array(out)
""", set()),
}


@pytest.mark.parametrize("variant", sorted(STD_VARIANTS))
def test_activation_std_variants_fail_the_right_tests(master, variant):
    source, tests = master
    replacement, must_fail = STD_VARIANTS[variant]
    ns = _with(source, replacement)
    assert_fails_exactly(tests, STD_TESTS, ns, must_fail, variant)


# --------------------------------------------------------------------------- otter end to end

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
