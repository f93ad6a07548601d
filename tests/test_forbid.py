"""gradkit.forbid: the tracer that enforces each stub's forbidden calls, in process and in grading."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from keras import ops

from gradkit.forbid import forbidding, message, rule_for, traced_call
from gradkit.guard import student_call
from gradkit_grader.autodiff import input_gradient

LEAKY = {"calls": ["keras.src.ops.nn.leaky_relu"], "reason": "build it from elementary operations"}
NO_TF = {"direct": ["tensorflow."], "reason": "no tf.* in your own code"}
X = np.linspace(-1.0, 1.0, 7).astype("float32")


def library_leaky(x, negative_slope=0.01):
    return ops.leaky_relu(x, negative_slope=negative_slope)


def own_leaky(x, negative_slope=0.01):
    return ops.where(x > 0, x, negative_slope * x)


def test_traced_call_names_a_forbidden_call_at_any_depth_and_returns_the_result():
    result, called = traced_call(library_leaky, (X,), {"negative_slope": 0.1}, LEAKY["calls"])
    assert called == ["keras.src.ops.nn.leaky_relu"]
    np.testing.assert_allclose(ops.convert_to_numpy(result), np.where(X > 0, X, 0.1 * X), rtol=1e-6, atol=0)
    assert traced_call(own_leaky, (X,), {}, LEAKY["calls"])[1] == []
    # a level deeper: the student's helper calls the library function
    assert traced_call(lambda x: library_leaky(x), (X,), {}, LEAKY["calls"])[1] == ["keras.src.ops.nn.leaky_relu"]


def test_direct_rules_see_only_the_submissions_own_calls():
    """a1's rule: no tf.* in the student's code, while keras.ops.clip calls tf.clip_by_value inside."""
    import tensorflow as tf

    def with_keras(g):
        return ops.clip(g, -0.5, 0.5)

    def with_tf(g):
        return tf.clip_by_value(g, -0.5, 0.5)

    assert traced_call(with_keras, (X,), {}, (), NO_TF["direct"])[1] == []
    assert traced_call(with_keras, (X,), {}, NO_TF["direct"])[1]  # the same prefix anywhere: found inside
    assert traced_call(with_tf, (X,), {}, (), NO_TF["direct"])[1][0].startswith("tensorflow.")  # its dispatch wrapper
    home = {"tf": tf}  # code with other globals is not the submission's own
    exec("def elsewhere(g):\n    return tf.clip_by_value(g, -0.5, 0.5)\n", home)
    assert traced_call(with_tf, (X,), {}, (), NO_TF["direct"], home=home)[1] == []
    assert traced_call(home["elsewhere"], (X,), {}, (), NO_TF["direct"])[1]


def test_a_stub_that_removes_the_profiler_is_reported_and_the_old_one_comes_back():
    import sys

    def remover(x):
        sys.setprofile(None)
        return ops.leaky_relu(x)  # not seen any more: the removal itself is the finding

    before = sys.getprofile()
    assert traced_call(remover, (X,), {}, LEAKY["calls"])[1] == ["sys.setprofile"]
    assert sys.getprofile() is before


def test_threads_started_by_the_stub_are_traced():
    def in_a_thread(x):
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("y", ops.leaky_relu(x)))
        t.start()
        t.join()
        return out["y"]

    assert traced_call(in_a_thread, (X,), {}, LEAKY["calls"])[1] == ["keras.src.ops.nn.leaky_relu"]
    assert threading._profile_hook is None  # noqa: SLF001 - restored for threads started later


def test_student_call_applies_the_rule_of_the_stubs_name_only_inside_forbidding():
    leaky_relu = library_leaky
    leaky_relu.__name__ = "leaky_relu"
    try:
        student_call(leaky_relu, X, what="leaky_relu")  # no rules: allowed
        with forbidding({"leaky_relu": LEAKY}):
            assert rule_for("leaky_relu") == LEAKY and rule_for("other") is None
            with pytest.raises(AssertionError, match="leaky_relu calls keras.src.ops.nn.leaky_relu, which this "
                                                     "question forbids: build it from elementary operations"):
                student_call(leaky_relu, X, what="leaky_relu")
            with pytest.raises(AssertionError, match="forbids"):
                input_gradient(leaky_relu, X)
            own_leaky.__name__ = "leaky_relu"
            np.testing.assert_allclose(input_gradient(own_leaky, X), np.where(X > 0, 1.0, 0.01), rtol=1e-6, atol=0)
        assert rule_for("leaky_relu") is None
    finally:
        library_leaky.__name__, own_leaky.__name__ = "library_leaky", "own_leaky"


def test_message_names_at_most_three_calls():
    text = message("f", ["a.b", "c.d", "e.f", "g.h", "i.j"], {"reason": "why"})
    assert text == "f calls a.b, c.d, e.f and 2 more, which this question forbids: why"
