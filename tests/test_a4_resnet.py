"""Assignment a4_resnet (residual blocks): the master notebook's tests, and the real otter pipeline.

* Fast part: the test cells of ``solutions/a4_resnet/a4_resnet.ipynb`` are extracted and run,
  outside otter, against the solution and against typical wrong answers. Each wrong answer must
  fail the test written for it (missing skip -> skip structure, skip added after the activation ->
  identity behaviour, wrong output shape -> output shape, ...), with an AssertionError.
* End-to-end part: the real ``otter assign`` on the master, then the real ``otter run`` with the
  generated autograder zip on the solution notebook (full marks) and on the student notebook
  (zero on every question: its stubs are blank).
"""
from __future__ import annotations

import re
import time

import pytest

from _masters import compiled_tests, grade, master_parts, master_path, otter, setup_source

NAME = "a4_resnet"
MASTER = master_path(NAME)
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}  # otter's environment: TensorFlow's log lines stay out of the outputs


# --------------------------------------------------------------------------- master parsing

def _master_parts():
    """(setup source, {question: solution source}, {test name: (question, hidden, source)})."""
    _, solutions, tests = master_parts(MASTER)
    return setup_source(MASTER), solutions, {name: (q, hidden, src) for name, (q, hidden, _, src) in tests.items()}


@pytest.fixture(scope="module")
def master():
    setup, solutions, tests = _master_parts()
    ns: dict = {}
    exec(compile(setup, "<setup>", "exec"), ns)
    for q in ("q1", "q2"):
        exec(compile(solutions[q], f"<{q}>", "exec"), ns)
    return ns, compiled_tests(tests)


def test_master_layout():
    setup, solutions, tests = _master_parts()
    assert setup is not None and {"q1", "q2"} <= set(solutions)
    by_q = {}
    for name, (q, hidden, _) in tests.items():
        by_q.setdefault(q, []).append((name, hidden))
    # every autograded question has a public test and hidden tests
    for q in ("q1", "q2"):
        assert any(not h for _, h in by_q[q]) and any(h for _, h in by_q[q]), by_q[q]
    # every hidden test takes its numbers from grading.yml, baked in by `gradkit release`
    for name, (q, hidden, src) in tests.items():
        if hidden:
            assert 'tol = tolerances("a4_resnet")' in src, name
            assert "from gradkit.config import tolerances" in src, name


def test_grading_section_complete():
    from gradkit.config import tolerances

    tol = tolerances(NAME)
    _, _, tests = _master_parts()
    used = set()
    for _, _, src in tests.values():
        used |= set(re.findall(r'tol\["(\w+)"\]', src))
    assert used <= set(tol), f"keys used by tests but missing in grading.yml: {used - set(tol)}"
    assert set(tol) - used == set(), f"keys in grading.yml no test uses: {set(tol) - used}"


# --------------------------------------------------------------------------- wrong answers

def _block_variants():
    import keras
    from keras import layers

    from gradkit.activations import get_activation

    def branch(x, units, act, name):
        h = layers.Dense(units, name=f"{name}_d1")(x)
        h = layers.BatchNormalization(name=f"{name}_b1")(h)
        h = layers.Activation(act, name=f"{name}_a1")(h)
        h = layers.Dense(units, name=f"{name}_d2")(h)
        return layers.BatchNormalization(name=f"{name}_b2")(h)

    def skip_of(x, units, name):
        return x if x.shape[-1] == units else layers.Dense(units, use_bias=False, name=f"{name}_p")(x)

    def no_skip(x, units, *, activation="relu", initializer=None, seed=None, name="b"):
        act = get_activation(activation)
        return layers.Activation(act)(branch(x, units, act, name))

    def skip_after_activation(x, units, *, activation="relu", initializer=None, seed=None, name="b"):
        act = get_activation(activation)
        h = layers.Activation(act)(branch(x, units, act, name))
        return layers.Add()([h, skip_of(x, units, name)])

    def wrong_width(x, units, *, activation="relu", initializer=None, seed=None, name="b"):
        act = get_activation(activation)   # keeps the input width instead of `units`
        d = x.shape[-1]
        return layers.Activation(act)(layers.Add()([branch(x, d, act, name), x]))

    def always_project(x, units, *, activation="relu", initializer=None, seed=None, name="b"):
        act = get_activation(activation)
        p = layers.Dense(units, use_bias=False, name=f"{name}_p")(x)
        return layers.Activation(act)(layers.Add()([branch(x, units, act, name), p]))

    def blank(x, units, *, activation="relu", initializer=None, seed=None, name="b"):
        ...

    def raises(x, units, **kw):
        raise ValueError("student bug")

    return {"no_skip": no_skip, "skip_after_activation": skip_after_activation,
            "wrong_width": wrong_width, "always_project": always_project, "blank": blank,
            "raises": raises, "keras": keras}


#: wrong block -> hidden tests of q1 that must fail (the others may pass or fail).
BLOCK_MUST_FAIL = {
    "no_skip": {"test_block_skip_structure", "test_block_identity_when_branch_is_off"},
    "skip_after_activation": {"test_block_identity_when_branch_is_off"},
    "wrong_width": {"test_block_output_shape"},
    "always_project": {"test_block_skip_structure"},
    "blank": {"test_block_output_shape", "test_block_skip_structure", "test_block_identity_when_branch_is_off"},
    "raises": {"test_block_output_shape", "test_block_skip_structure", "test_block_identity_when_branch_is_off"},
}


def test_q1_tests_pass_on_solution(master):
    ns, tests = master
    for name, (q, hidden, fn) in tests.items():
        if q == "q1":
            fn(ns["residual_block"])


@pytest.mark.parametrize("variant", sorted(BLOCK_MUST_FAIL))
def test_q1_tests_catch_wrong_blocks(master, variant):
    _, tests = master
    block = _block_variants()[variant]
    for name in BLOCK_MUST_FAIL[variant]:
        with pytest.raises(AssertionError):
            tests[name][2](block)
    # the public tests also fail on the first three kinds of mistakes a student can see quickly
    if variant in ("no_skip", "always_project", "blank", "raises"):
        with pytest.raises(AssertionError):
            tests["test_block_has_skip_public"][2](block)


def test_skip_after_activation_passes_structure_but_gets_a_hint(master):
    """The skip-after-activation block is caught by the behaviour test, whose message says why."""
    _, tests = master
    block = _block_variants()["skip_after_activation"]
    tests["test_block_skip_structure"][2](block)   # structure alone cannot see the order
    with pytest.raises(AssertionError, match="AFTER the Add"):
        tests["test_block_identity_when_branch_is_off"][2](block)


def test_q2_structure_on_solution_and_wrong_models(master):
    import keras
    from keras import layers

    ns, tests = master
    structure = tests["test_resnet_structure"][2]
    public = tests["test_resnet_public"][2]
    structure(ns["build_resnet"])
    public(ns["build_resnet"])

    def no_output_layer(depth, width, input_dim, output_dim, **kw):
        inp = keras.Input((input_dim,))
        x = inp
        for b in range(depth):
            x = ns["residual_block"](x, width, name=f"nol{b}")
        return keras.Model(inp, x)

    def one_block_short(depth, width, input_dim, output_dim, *, output_activation="sigmoid", **kw):
        inp = keras.Input((input_dim,))
        x = inp
        for b in range(depth - 1):
            x = ns["residual_block"](x, width, name=f"obs{b}")
        return keras.Model(inp, layers.Dense(output_dim, activation=output_activation)(x))

    for wrong in (no_output_layer, one_block_short, lambda *a, **k: None):
        with pytest.raises(AssertionError):
            structure(wrong)
        with pytest.raises(AssertionError):
            public(wrong)


def test_q2_expensive_tests_fail_fast_on_blank(master):
    _, tests = master
    for name in ("test_resnet_gradient_reaches_first_layer", "test_resnet_trains"):
        t0 = time.time()
        with pytest.raises(AssertionError, match="not defined|returned NoneType"):
            tests[name][2](lambda *a, **k: None)
        assert time.time() - t0 < 10


# --------------------------------------------------------------------------- end to end

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
                   "test_resnet_gradient_reaches_first_layer", "BEGIN SOLUTION"):
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
    _, _, tests = _master_parts()
    for q, entry in blank.items():
        assert entry["score"] == 0, f"blank stubs scored on {q}:\n{entry.get('output')}"
        # every case, hidden ones included, is reported as failing
        n_cases = sum(tq == q for tq, _, _ in tests.values())
        out = entry.get("output", "")
        assert "Test case passed" not in out and out.count("Test case failed") == n_cases, out
    print(f"\nassign {t1 - t0:.0f} s, run solution {t2 - t1:.0f} s, run blank {t3 - t2:.0f} s")
