"""Assignment a4_resnet (residual blocks): the master notebook's tests, and the real otter pipeline.

* Fast part: the test cells of ``course/a4_resnet/a4_resnet.ipynb`` are extracted and run,
  outside otter, against the solution, against correct alternative implementations and against
  typical wrong answers. Each wrong answer must fail exactly the hidden tests written for it
  (missing skip -> skip structure and identity behaviour, skip added after the activation ->
  identity behaviour, wrong output width -> shapes, a plain net -> structure and gradient, ...),
  with an AssertionError; the four cases of a banded test count as that test.
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
    assert_fails_exactly,
    assert_hidden_tests_self_contained,
    assert_question_cases,
    compiled_tests,
    failed_by_test,
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
POINTS = {"q1": 6, "q2": 6}
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
    ns = namespace(setup + "\n", solutions["q1"], solutions["q2"])
    return ns, compiled_tests(tests)


@pytest.fixture(autouse=True)
def _fresh_memo():
    from gradkit_grader.bands import clear_memo

    clear_memo()
    yield
    clear_memo()


def _hidden(tests, question=None):
    return [n for n, (q, hidden, _, _) in tests.items() if hidden and question in (None, q)]




def _with(ns: dict, code: str) -> dict:
    """The solution's namespace with ``code`` (a student's variant) run on top of it."""
    ns = dict(ns)
    exec(compile(code, "<variant>", "exec"), ns)
    return ns


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

    assert_band_cases(tests, CHECKS, BAND_STEPS)


def test_grading_section_complete():
    """Every tol[...] key the tests or the statistics read is in tolerances.yml, and every key there (budgets
    aside) is used."""
    import gradkit_grader.course.a4_resnet.statistics as module
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    _, _, tests = _parts()
    sources = [src for *_, src in tests.values()] + [Path(module.__file__).read_text()]
    used = set()
    for src in sources:
        used |= set(re.findall(r"""tol\[\s*["'](\w+)["']\s*\]""", src))
    used |= {k for c in module.CHECKS for k in (c.full, c.zero)}
    assert used <= set(tol), f"keys used by tests but missing in tolerances.yml: {sorted(used - set(tol))}"
    assert set(tol) <= used, f"keys in tolerances.yml no test uses: {sorted(set(tol) - used)}"


def test_checks_module():
    import gradkit_grader.course.a4_resnet.statistics as module
    from gradkit_grader.statistic import direction
    from gradkit_tools.course import tolerances

    tol = tolerances(NAME)
    assert len(Path(module.__file__).read_text().splitlines()) <= 300
    by_test = {c.test: c for c in module.CHECKS}
    assert set(by_test) == {"test_resnet_gradient", "test_resnet_trains"}
    assert direction(tol["grad_log10_ratio_full"], tol["grad_log10_ratio_zero"]) is True   # larger is better
    assert direction(tol["train_loss_full"], tol["train_loss_zero"]) is False              # smaller is better
    for c in module.CHECKS:
        assert set(c.reference(tol)) == {"residual_block", "build_resnet"}
        assert list(inspect.signature(c.statistic).parameters) == ["components", "tol", "seed"]


# --------------------------------------------------------------------------- q1: blocks

def _block_variants():
    """name -> code of a wrong residual_block (run on top of the solution's namespace)."""
    branch = '''
def _branch(x, units, act, name):
    h = layers.Dense(units, name=f"{name}_d1")(x)
    h = layers.BatchNormalization(name=f"{name}_b1")(h)
    h = layers.Activation(act, name=f"{name}_a1")(h)
    h = layers.Dense(units, name=f"{name}_d2")(h)
    return layers.BatchNormalization(name=f"{name}_b2")(h)

def _skip(x, units, name):
    return x if x.shape[-1] == units else layers.Dense(units, use_bias=False, name=f"{name}_p")(x)
'''
    sig = 'def residual_block(x, units, *, activation="relu", initializer="he_normal", seed=None, name="block"):\n'
    return {
        "no_skip": branch + sig + "    act = get_activation(activation)\n"
                   "    return layers.Activation(act)(_branch(x, units, act, name))\n",
        "skip_after_activation": branch + sig + "    act = get_activation(activation)\n"
                   "    h = layers.Activation(act)(_branch(x, units, act, name))\n"
                   "    return layers.Add()([h, _skip(x, units, name)])\n",
        "wrong_width": branch + sig + "    act = get_activation(activation)   # keeps the input width\n"
                   "    return layers.Activation(act)(layers.Add()([_branch(x, x.shape[-1], act, name), x]))\n",
        "always_project": branch + sig + "    act = get_activation(activation)\n"
                   "    p = layers.Dense(units, use_bias=False, name=f'{name}_p')(x)\n"
                   "    return layers.Activation(act)(layers.Add()([_branch(x, units, act, name), p]))\n",
        "projection_with_activation": branch + sig + "    act = get_activation(activation)\n"
                   "    p = x if x.shape[-1] == units else layers.Dense(units, activation='relu', use_bias=False)(x)\n"
                   "    return layers.Activation(act)(layers.Add()([_branch(x, units, act, name), p]))\n",
        "blank": sig + "    ...\n",
        "raises": sig + "    raise ValueError('student bug')\n",
    }


#: wrong block -> the q1 hidden tests it fails (exactly).
BLOCK_MUST_FAIL = {
    "no_skip": {"test_block_skip_structure", "test_block_identity_when_branch_is_off"},
    "skip_after_activation": {"test_block_identity_when_branch_is_off"},
    "wrong_width": {"test_block_output_shape", "test_block_skip_structure", "test_block_identity_when_branch_is_off"},
    "always_project": {"test_block_skip_structure", "test_block_identity_when_branch_is_off"},
    "projection_with_activation": {"test_block_skip_structure", "test_block_identity_when_branch_is_off"},
    "blank": {"test_block_output_shape", "test_block_skip_structure", "test_block_identity_when_branch_is_off"},
    "raises": {"test_block_output_shape", "test_block_skip_structure", "test_block_identity_when_branch_is_off"},
}

#: correct ways to write residual_block (the example submissions use the same ideas).
BLOCK_CORRECT = {
    "add_function_and_names": '''
def residual_block(x, units, *, activation="relu", initializer="he_normal", seed=None, name="block"):
    init = [get_initializer(initializer, None if seed is None else seed + i) for i in range(3)]
    skip = x if x.shape[-1] == units else layers.Dense(units, use_bias=False, kernel_initializer=init[2])(x)
    h = x
    for i in range(2):
        h = layers.Dense(units, kernel_initializer=init[i])(h)
        h = layers.BatchNormalization()(h)
        if i == 0:
            h = layers.Activation(activation)(h)
    return layers.Activation(activation)(keras.layers.add([h, skip]))
''',
    "sequential_branch": '''
def residual_block(x, units, *, activation="relu", initializer="he_normal", seed=None, name="block"):
    act = get_activation(activation)
    s = (lambda i: None) if seed is None else (lambda i: seed + i)
    branch = keras.Sequential([
        layers.Dense(units, kernel_initializer=get_initializer(initializer, s(0))),
        layers.BatchNormalization(),
        layers.Activation(act),
        layers.Dense(units, kernel_initializer=get_initializer(initializer, s(1))),
        layers.BatchNormalization(),
    ], name=f"{name}_branch")
    if x.shape[-1] != units:
        x_skip = layers.Dense(units, use_bias=False, kernel_initializer=get_initializer(initializer, s(2)),
                              name=f"{name}_proj")(x)
    else:
        x_skip = x
    return layers.Activation(act, name=f"{name}_out")(layers.Add(name=f"{name}_add")([branch(x), x_skip]))
''',
}


def test_q1_tests_pass_on_solution(master):
    ns, tests = master
    names = [n for n, (q, *_) in tests.items() if q == "q1"]
    assert failures(tests, names, ns) == {}


@pytest.mark.parametrize("variant", sorted(BLOCK_CORRECT))
def test_q1_correct_alternatives_pass(master, variant):
    ns, tests = master
    names = [n for n, (q, *_) in tests.items() if q == "q1"]
    assert failures(tests, names, _with(ns, BLOCK_CORRECT[variant])) == {}


@pytest.mark.parametrize("variant", sorted(BLOCK_MUST_FAIL))
def test_q1_tests_catch_wrong_blocks(master, variant):
    ns, tests = master
    wrong = _with(ns, _block_variants()[variant])
    assert_fails_exactly(tests, _hidden(tests, "q1"), wrong, BLOCK_MUST_FAIL[variant], variant)
    # the public tests also fail on the mistakes a student can see quickly
    if variant in ("no_skip", "always_project", "blank", "raises"):
        assert "test_block_has_skip_public" in failures(tests, ["test_block_has_skip_public"], wrong)


def test_skip_after_activation_passes_structure_but_gets_a_hint(master):
    """The skip-after-activation block is caught by the behaviour test, whose message says why."""
    ns, tests = master
    wrong = _with(ns, _block_variants()["skip_after_activation"])
    failed = failures(tests, ["test_block_skip_structure", "test_block_identity_when_branch_is_off"], wrong)
    assert list(failed) == ["test_block_identity_when_branch_is_off"]
    msg = failed["test_block_identity_when_branch_is_off"]
    assert "AFTER the Add" in msg and "hidden-test seed" in msg


# --------------------------------------------------------------------------- q2: the network

_BUILD_SIG = ('def build_resnet(depth, width, input_dim, output_dim, *, activation="relu", initializer="he_normal",\n'
              '                 output_activation="sigmoid", seed=0, name="resnet"):\n')

#: wrong build_resnet -> the q2 hidden tests it fails (exactly; bands merged).
RESNET_MUST_FAIL = {
    # a plain stack of 2 * depth Dense layers: no Add, no better gradient than the plain net, and it
    # trains worse than a ResNet (tolerances.yml: train_loss_zero is this control's level)
    "plain_stack": (_BUILD_SIG + '''    inp = keras.Input((input_dim,))
    x = inp
    for i in range(2 * depth):
        x = layers.Dense(width, activation=get_activation(activation),
                         kernel_initializer=get_initializer(initializer, seed + i))(x)
    out = layers.Dense(output_dim, activation=output_activation,
                       kernel_initializer=get_initializer(initializer, seed + 2 * depth))(x)
    return keras.Model(inp, out, name=name)
''', {"test_resnet_structure", "test_resnet_gradient", "test_resnet_trains"}),
    # one block too few: the structure test counts the Adds
    "one_block_short": (_BUILD_SIG + '''    inp = keras.Input((input_dim,))
    x = inp
    for b in range(depth - 1):
        x = residual_block(x, width, activation=activation, initializer=initializer, seed=seed + 3 * b,
                           name=f"obs{b}")
    return keras.Model(inp, layers.Dense(output_dim, activation=output_activation)(x), name=name)
''', {"test_resnet_structure"}),
    "softmax_ignored": (_BUILD_SIG + '''    inp = keras.Input((input_dim,))
    x = inp
    for b in range(depth):
        x = residual_block(x, width, activation=activation, initializer=initializer, seed=seed + 3 * b,
                           name=f"block_{b + 1}")
    return keras.Model(inp, layers.Dense(output_dim, activation="sigmoid")(x), name=name)
''', {"test_resnet_structure"}),
    "returns_none": (_BUILD_SIG + "    pass\n",
                     {"test_resnet_structure", "test_resnet_gradient", "test_resnet_trains"}),
}

#: correct ways to write build_resnet.
RESNET_CORRECT = {
    "library_builder": _BUILD_SIG + '''    return models.build_resnet(depth, width, block=residual_block,
                               activation=activation, initializer=initializer, input_dim=input_dim,
                               output_dim=output_dim, output_activation=output_activation, stem_layers=0, head_layers=0,
                               seed=seed, name=name)
''',
    "reduce_and_dense_activation": "import functools\n" + _BUILD_SIG + '''    inputs = keras.Input(shape=(input_dim,))
    seeds = [None if seed is None else seed + 3 * b for b in range(depth + 1)]
    x = functools.reduce(lambda h, b: residual_block(h, width, activation=activation, initializer=initializer,
                                                      seed=seeds[b], name=f"res{b}"), range(depth), inputs)
    outputs = layers.Dense(output_dim, activation=output_activation,
                           kernel_initializer=get_initializer(initializer, seeds[depth]))(x)
    return keras.Model(inputs=inputs, outputs=outputs, name=name)
''',
}


def test_q2_structure_on_solution_and_wrong_models(master):
    ns, tests = master
    cheap = ["test_resnet_structure", "test_resnet_public"]
    assert failures(tests, cheap, ns) == {}
    for variant, (code, must_fail) in RESNET_MUST_FAIL.items():
        failed = failures(tests, cheap, _with(ns, code))
        assert ("test_resnet_structure" in failed) == ("test_resnet_structure" in must_fail), (variant, failed)
        assert "test_resnet_public" in failed or variant == "softmax_ignored", (variant, failed)


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


@pytest.mark.parametrize("variant", sorted(RESNET_CORRECT))
def test_q2_correct_alternatives_pass(master, variant):
    ns, tests = master
    names = [n for n, (q, *_) in tests.items() if q == "q2"]
    assert failures(tests, names, _with(ns, RESNET_CORRECT[variant])) == {}


@pytest.mark.parametrize("variant", sorted(RESNET_MUST_FAIL))
def test_q2_tests_catch_wrong_networks(master, variant):
    """Each wrong build_resnet fails exactly its tests; a failed banded test fails all its cases."""
    ns, tests = master
    code, must_fail = RESNET_MUST_FAIL[variant]
    failed = failed_by_test(tests, _hidden(tests, "q2"), _with(ns, code))
    assert set(failed) == must_fail, f"{variant}: failed {sorted(failed)}, expected {sorted(must_fail)}: {failed}"
    for test in must_fail - {"test_resnet_structure"}:
        assert len(failed[test]) == BAND_STEPS, f"{variant}: {test} must earn no credit: {failed[test]}"


@pytest.mark.slow
def test_seed_sweep(master, monkeypatch):
    """The solution passes every hidden test under 20 other base seeds (tol["seed"] replaced)."""
    ns, tests = master
    sweep_base_seeds(monkeypatch, tests, _hidden(tests), ns, range(1, 21))



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
