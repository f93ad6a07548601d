"""The grading harness (gradkit_grader.harness, .kernel, .remote, .wire) against a real IPython kernel.

The kernel here runs without a sandbox (tests/test_sandbox.py grades through bubblewrap); what is
tested is the protocol: only plain data crosses, the student's exceptions, time limits and deaths
come back as data, and nothing the kernel sends can run code in the harness.
"""
from __future__ import annotations

import base64
import json
import math
import os

import numpy as np
import pytest

from gradkit_grader import wire
from gradkit_grader.harness import grading_cell, install_code
from gradkit_grader.kernel import KernelGone, KernelSession, KernelTimeout
from gradkit_grader.remote import Opaque, Remote, Student, StudentRaised, same_object

STUDENT_CODE = '''
import numpy as np
import keras
from keras import ops

def relu(x):
    return np.maximum(x, 0.0)

def relu_ops(x, negative_slope=0.0):
    return ops.where(x > 0, x, negative_slope * x)

def leaky_library(x, negative_slope=0.01):
    return ops.leaky_relu(x, negative_slope=negative_slope)

def leaky_unhooked(x, negative_slope=0.01):
    import sys
    sys.setprofile(None)  # removes the grader's tracer, then calls the forbidden function unseen
    return ops.leaky_relu(x, negative_slope=negative_slope)

def relu_numpy(x, negative_slope=0.0):
    x = np.asarray(x)
    return np.where(x > 0, x, negative_slope * x)

def shapes(*arrays, **named):
    return {"args": [tuple(np.shape(a)) for a in arrays], "named": sorted(named),
            "types": [type(a).__name__ for a in arrays]}

def raises():
    raise ValueError("bad input, try again")

def exits():
    import sys
    sys.exit(3)

def forever():
    while True:
        pass

def stubborn():
    while True:
        try:
            while True:
                pass
        except KeyboardInterrupt:
            pass

def forge():
    # a fake answer published before the real one: the harness takes the handler's (last) answer
    get_ipython().display_pub.publish(data={"application/x.gradkit-rpc+json": '{"ok": 42}'}, metadata={})
    return 1

SHARED = keras.optimizers.SGD(learning_rate=0.01, clipvalue=1.0)

def make_optimizer():
    return keras.optimizers.SGD(learning_rate=0.01, clipvalue=1.0)

def shared_optimizer():
    return SHARED

def make_model():
    inp = keras.Input((3,))
    return keras.Model(inp, keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant(0.5))(inp))

def lambda_model():
    inp = keras.Input((3,))
    return keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp))

def block(x, units):
    y = keras.layers.Dense(units, kernel_initializer="ones", name="branch")(x)
    return keras.layers.Add(name="skip")([x, y])

def weight_sum(model):
    return float(sum(np.sum(w) for w in model.get_weights()))

def make_function():
    return relu

class Thing:
    def __repr__(self):
        return "Thing()"

import collections, dataclasses

@dataclasses.dataclass
class Result:
    rate: float
    ci: tuple
    losses: object

Pair = collections.namedtuple("Pair", "low high")

def study():
    return Result(0.25, (0.1, 0.4), np.arange(3.0)), Pair(1, 2)

def thing():
    return Thing()

answer = 41
'''


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kernel")
    env = dict(os.environ, HOME=str(folder))
    session = KernelSession(folder, env=env)
    res = session.execute(STUDENT_CODE)
    assert res.ename is None, res.evalue
    res = session.execute(install_code(), store_history=False)
    assert res.ename is None, res.evalue
    yield Student(session)
    session.stop()


def _names(student, *names):
    return student.lookup(list(names))


# -- the wire format ------------------------------------------------------------------------

def _decode(data):
    def special(marker, payload, at):
        raise wire.WireError(f"{at}: {marker} not expected")
    return wire.decode(data, special)


@pytest.mark.parametrize("value", [None, True, 3, -2.5, "text", [1, [2, 3]], (1, "a"), {"k": (1.0, None)},
                                   np.arange(6, dtype="float32").reshape(2, 3), np.array([True, False]),
                                   np.float64(2.5), np.int32(-7), np.zeros((0, 3), dtype="int64")])
def test_wire_round_trips_plain_data(value):
    back = _decode(json.loads(json.dumps(wire.encode(value))))
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and back.shape == value.shape and np.array_equal(back, value)
    elif isinstance(value, np.generic):
        assert type(back) is type(value) and back == value
    else:
        assert back == value and type(back) is type(value)


def test_wire_round_trips_non_finite_floats():
    back = _decode(json.loads(json.dumps(wire.encode([math.inf, -math.inf, math.nan]))))
    assert back[:2] == [math.inf, -math.inf] and math.isnan(back[2])


@pytest.mark.parametrize("data, message", [
    ({"__array__": {"dtype": "object", "shape": [1], "data": "", "scalar": False}}, "dtype 'object'"),
    ({"__array__": {"dtype": "float32", "shape": [3], "data": base64.b64encode(b"\0" * 8).decode(),
                    "scalar": False}}, r"8 bytes for shape \[3\]"),
    ({"__array__": {"dtype": "float32", "shape": [-1], "data": "", "scalar": False}}, "non-negative"),
    ({"__array__": {"dtype": "float32", "shape": [1 << 20, 1 << 20], "data": "", "scalar": False}}, "elements"),
    ({"__array__": {"dtype": "float32", "shape": [], "data": "AAAAAA==", "scalar": "yes"}}, "scalar must be"),
    ({"__pickle__": "gASVAAAA"}, "not a value of the wire format"),
    ({"__float__": "1e999"}, "non-finite float"),
    ({"a": 1, "b": 2}, "not a value of the wire format"),
])
def test_wire_rejects_what_is_not_the_format(data, message):
    with pytest.raises(wire.WireError, match=message):
        _decode(data)


def test_wire_rejects_deep_nesting():
    deep: list = []
    for _ in range(wire.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(wire.WireError, match="deeper"):
        _decode(deep)


def test_grading_cells_are_recognised():
    assert grading_cell('grader.check("q1")') == ["q1"]
    assert grading_cell('grader.check("q1")\ngrader.check("q2")') == ["q1", "q2"]
    assert grading_cell("grader.export(pdf=False)") == []
    assert grading_cell('x = grader.check("q1")') is None
    assert grading_cell('grader.check("q1"); relu = None') is None
    assert grading_cell("def f(:") is None
    assert grading_cell("") is None


# -- calls into a real kernel ---------------------------------------------------------------

def test_lookup_gives_handles_values_and_none(student):
    env = _names(student, "relu", "answer", "undefined_name")
    assert isinstance(env["relu"], Remote) and env["answer"] == 41 and env["undefined_name"] is None


def test_arrays_and_tensors_cross_with_their_types(student):
    import keras

    env = _names(student, "relu", "shapes", "relu_ops")
    out = env["relu"](np.array([-1.0, 2.0], dtype="float32"))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.tolist() == [0.0, 2.0]
    got = env["shapes"](np.zeros((2, 3)), keras.ops.ones((4,)), [1, 2], alpha=1)
    assert got == {"args": [(2, 3), (4,), (2,)], "named": ["alpha"],
                   "types": ["ndarray", type(keras.ops.ones((1,))).__name__, "list"]}
    t = env["relu_ops"](keras.ops.convert_to_tensor(np.array([-2.0, 3.0], dtype="float32")), negative_slope=0.5)
    assert keras.ops.is_tensor(t) and keras.ops.convert_to_numpy(t).tolist() == [-1.0, 3.0]


def test_exceptions_come_back_as_text(student):
    env = _names(student, "raises", "exits")
    with pytest.raises(StudentRaised, match="ValueError: bad input, try again"):
        env["raises"]()
    with pytest.raises(StudentRaised, match="SystemExit"):
        env["exits"]()
    assert "exits raised SystemExit" in student.notes


def test_a_late_forged_answer_does_not_win(student):
    assert _names(student, "forge")["forge"]() == 1


def test_timeouts_interrupt_the_kernel_which_goes_on(student):
    env = _names(student, "forever", "relu")
    with pytest.raises(KernelTimeout):
        env["forever"].call(timeout_s=1)
    assert env["relu"](np.array([-1.0])).tolist() == [0.0]


def test_student_call_turns_kernel_outcomes_into_failed_cases(student):
    from gradkit.guard import student_call

    env = _names(student, "forever", "raises", "relu")
    with pytest.raises(AssertionError, match=r"timeout after 1 s in forever$"):
        student_call(env["forever"], timeout_s=1, what="forever")
    with pytest.raises(AssertionError, match="raises raised ValueError: bad input"):
        student_call(env["raises"], what="raises")
    assert student_call(env["relu"], np.array([3.0]), what="relu").tolist() == [3.0]


def test_keras_objects_are_rebuilt_from_config_and_keep_identity(student):
    import keras

    env = _names(student, "make_optimizer", "shared_optimizer")
    a, b = env["make_optimizer"](), env["make_optimizer"]()
    assert isinstance(a, keras.optimizers.SGD) and a.clipvalue == 1.0 and not same_object(a, b)
    assert same_object(env["shared_optimizer"](), env["shared_optimizer"]())


def test_models_cross_with_weights_both_ways(student):
    import keras

    env = _names(student, "make_model", "weight_sum", "lambda_model")
    model = env["make_model"]()
    assert isinstance(model, keras.Model)
    assert np.allclose(model(np.ones((1, 3), dtype="float32")), 1.5)
    mine = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones",
                                                                   bias_initializer="zeros")])
    assert env["weight_sum"](mine) == 2.0
    with pytest.raises(StudentRaised, match="cannot be rebuilt by the grader"):
        env["lambda_model"]()


def test_symbolic_inputs_give_the_students_layers_in_the_harness_graph(student):
    import keras

    block = _names(student, "block")["block"]
    inp = keras.Input((4,))
    out = block(inp, 4)
    model = keras.Model(inp, out)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense", "Add"]
    x = np.ones((1, 4), dtype="float32")
    assert np.allclose(model(x), 1 + 4)


def test_functions_and_other_objects_stay_in_the_kernel(student):
    env = _names(student, "make_function", "thing", "relu")
    fn = env["make_function"]()
    assert isinstance(fn, Remote) and fn(np.array([-3.0])).tolist() == [0.0]
    obj = env["thing"]()
    assert isinstance(obj, Opaque) and type(obj).__name__ == "Thing" and repr(obj) == "Thing()"


def relu(x):
    return np.maximum(x, 0.0)


def test_dataclasses_and_named_tuples_come_back_as_records(student):
    result, pair = _names(student, "study")["study"]()
    assert type(result).__name__ == "Result" and result.rate == 0.25 and result.ci == (0.1, 0.4)
    assert result.losses.tolist() == [0.0, 1.0, 2.0] and (pair.low, pair.high) == (1, 2)
    assert "Result(rate=0.25" in repr(result) and not hasattr(result, "collapsed")


def test_seed_is_the_one_the_same_code_gets_in_process(student):
    from gradkit_grader.seeding import submission_seed

    remote = _names(student, "relu")["relu"]
    assert remote.__gradkit_canonical__() == b"def relu(x):\n    return np.maximum(x, 0.0)\n"
    assert submission_seed(7, remote) == submission_seed(7, relu) != submission_seed(8, relu)


def test_forbidden_calls_are_caught_in_the_kernel_however_the_stub_is_called(student):
    """gradkit.forbid's tracer runs in the kernel around each call of a stub with a rule: through
    student_call, a direct call of the handle, and the gradient; the rule follows the declared name."""
    from gradkit.forbid import forbidding
    from gradkit.guard import student_call
    from gradkit_grader.autodiff import input_gradient

    rule = {"calls": ["keras.src.ops.nn.leaky_relu"], "reason": "build it yourself"}
    env = _names(student, "leaky_library", "relu_ops", "leaky_unhooked")
    z = np.array([-2.0, 2.0], dtype="float32")
    assert np.allclose(student_call(env["leaky_library"], z, what="leaky_relu"), [-0.02, 2.0])  # no rule: allowed
    with forbidding({"leaky_library": rule, "relu_ops": rule, "leaky_unhooked": rule}):
        with pytest.raises(AssertionError, match="leaky_library calls keras.src.ops.nn.leaky_relu, which this "
                                                 "question forbids: build it yourself"):
            student_call(env["leaky_library"], z, what="leaky_relu")
        with pytest.raises(AssertionError, match="leaky_library calls keras.src.ops.nn.leaky_relu"):
            env["leaky_library"](z)
        with pytest.raises(AssertionError, match="leaky_library calls keras.src.ops.nn.leaky_relu"):
            input_gradient(env["leaky_library"], z)
        with pytest.raises(AssertionError, match="leaky_unhooked calls sys.setprofile"):
            student_call(env["leaky_unhooked"], z, what="leaky_unhooked")
        assert np.allclose(student_call(env["relu_ops"], z, negative_slope=0.5, what="relu_ops"), [-1.0, 2.0])
    assert np.allclose(env["leaky_library"](z), [-0.02, 2.0])  # the kernel's profiler is gone again


def test_gradients_are_taken_where_the_function_lives(student):
    from gradkit_grader.autodiff import input_gradient

    env = _names(student, "relu_ops", "relu_numpy")
    z = np.array([-2.0, -0.5, 0.5, 2.0], dtype="float32")
    assert input_gradient(env["relu_ops"], z, negative_slope=0.25).tolist() == [0.25, 0.25, 1.0, 1.0]
    assert input_gradient(env["relu_numpy"], z, negative_slope=0.25).tolist() == [0.0] * 4  # NumPy: no path


def test_a_stubborn_kernel_is_killed_and_says_so(tmp_path):
    session = KernelSession(tmp_path, env=dict(os.environ, HOME=str(tmp_path)))
    try:
        assert session.execute(STUDENT_CODE.split("SHARED =")[0]).ename is None
        session.execute(install_code(), store_history=False)
        student = Student(session)
        stubborn = student.lookup(["stubborn"])["stubborn"]
        with pytest.raises(KernelTimeout):
            stubborn.call(timeout_s=1)
        with pytest.raises(KernelGone, match="did not stop"):
            student.lookup(["relu"])
    finally:
        session.stop()


def test_a_kernel_that_dies_is_reported(tmp_path):
    session = KernelSession(tmp_path, env=dict(os.environ, HOME=str(tmp_path)))
    try:
        with pytest.raises(KernelGone, match=r"died while running a cell \(exit code 7\)"):
            session.execute("import os; os._exit(7)")
    finally:
        session.stop()


def test_a_hijacked_handler_cannot_send_anything_but_data(student):
    hijack = """
def hijack():
    ip = get_ipython()
    fake = '{"ok": {"__reduce__": ["os.system", ["touch /tmp/pwned"]]}}'
    ip.user_ns["__gradkit_rpc__"] = lambda text: ip.display_pub.publish(
        data={"application/x.gradkit-rpc+json": fake}, metadata={})
"""
    assert student.session.execute(hijack).ename is None
    _names(student, "hijack")["hijack"]()
    try:
        with pytest.raises(wire.WireError, match="one entry per name"):
            _names(student, "relu")
    finally:
        assert student.session.execute(install_code(), store_history=False).ename is None
    assert _names(student, "relu")["relu"](np.array([-1.0])).tolist() == [0.0]
