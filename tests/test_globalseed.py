"""gradkit_grader.globalseed: the seeds keras.utils.set_random_seed sets, TensorFlow's cache cleared only when needed.

The draws after ``set_global_seed(s)`` are compared with those after ``keras.utils.set_random_seed(s)`` (which
clears TensorFlow's kernel cache, so its draws are those of a fresh process), in the same process; the clears
are counted at the call ``tf.random.set_seed`` makes.
"""
import random
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from gradkit_grader.globalseed import set_global_seed

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="TensorFlow's eager seed is what this module sets without the cache clear")


def _stateless_draws() -> list[np.ndarray]:
    """Draws from every global generator but TensorFlow's stateful kernels: Python, NumPy, Keras."""
    return [np.array([random.random()]), np.random.rand(3), keras.ops.convert_to_numpy(keras.random.normal((3,))),
            keras.ops.convert_to_numpy(keras.initializers.HeNormal()((2, 2)))]


def _tf_draws() -> list[np.ndarray]:
    """TensorFlow's stateful random kernels (``seed``/``seed2`` attributes), unseeded and op-seeded."""
    return [tf.random.normal((3,)).numpy(), tf.random.uniform((2,), seed=7).numpy()]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture
def clears(monkeypatch) -> list[int]:
    """Counts the clears of TensorFlow's kernel cache."""
    from tensorflow.python.eager import context

    calls: list[int] = []
    real = context.pywrap_tfe.TFE_ContextClearCaches
    monkeypatch.setattr(context.pywrap_tfe, "TFE_ContextClearCaches", lambda h: (calls.append(1), real(h))[1])
    return calls


@pytest.fixture
def watched(monkeypatch):
    """The watch running in this thread, as after a clear: graphs other tests of this process traced (a sticky
    reason to clear at every seed) do not run in these tests."""
    from gradkit_grader.globalseed import _Watch

    set_global_seed(12345)
    assert _Watch.thread is not None, "the first call starts the watch"
    monkeypatch.setattr(_Watch, "traced", False)
    keras.utils.set_random_seed(12345)
    monkeypatch.setattr(_Watch, "eager", False)


def test_without_stateful_draws_the_cache_stays_and_every_draw_is_keras(watched, clears):
    set_global_seed(3)
    _stateless_draws()
    clears.clear()
    set_global_seed(4)
    assert clears == [], "no stateful random kernel ran, yet the kernel cache was cleared"
    ours = _stateless_draws() + _tf_draws()
    keras.utils.set_random_seed(4)
    assert _same(ours, _stateless_draws() + _tf_draws())


def test_after_an_eager_stateful_draw_the_next_seed_clears_and_restarts_it(watched, clears):
    set_global_seed(5)
    first = _stateless_draws() + _tf_draws()
    clears.clear()
    set_global_seed(5)
    assert clears, "a stateful kernel ran: the same seed again must clear the cache (its stream would go on)"
    assert _same(first, _stateless_draws() + _tf_draws())
    clears.clear()
    set_global_seed(6)  # the draws above ran after the clear: cleared again
    assert clears
    clears.clear()
    set_global_seed(7)  # nothing ran since
    assert clears == []


def test_a_function_that_draws_statefully_clears_when_called_and_once_traced_always(tmp_path):
    script = textwrap.dedent("""
        import tensorflow as tf
        from tensorflow.python.eager import context
        from gradkit_grader.globalseed import set_global_seed
        count = []
        real = context.pywrap_tfe.TFE_ContextClearCaches
        context.pywrap_tfe.TFE_ContextClearCaches = lambda h: (count.append(1), real(h))[1]
        inner = tf.function(lambda: tf.random.normal((2,)))
        early = tf.function(lambda: inner() * 2.0)  # traced before the watch, its draw one call down
        plain = tf.function(lambda: tf.ones((2,)) * 3.0)
        early(), plain()
        def clears(step):
            n = len(count)
            step()
            return len(count) - n
        print(clears(lambda: set_global_seed(1)),  # the first call: a clear, the watch begins
              clears(lambda: set_global_seed(2)),  # nothing ran since
              clears(lambda: (plain(), set_global_seed(3))),  # a function without stateful draws
              clears(lambda: (early(), set_global_seed(4))))  # a function that draws statefully
        late = tf.function(lambda: tf.random.uniform((2,)))
        first = late().numpy()
        again = []
        for _ in range(3):  # traced under the watch: every seed clears; the kernel restarts, its first draw again
            again.append(clears(lambda: set_global_seed(1)))
            assert (late().numpy() == first).all()
        print(*again)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-2].split() == ["1", "0", "0", "1"], lines
    assert lines[-1].split() == ["1", "1", "1"], lines


def test_a_seed_must_be_an_int():
    with pytest.raises(ValueError, match="seed must be an int"):
        set_global_seed(np.int64(3))


def test_an_op_the_watch_cannot_classify_counts_as_seeded_and_raises_nothing(monkeypatch):
    from tensorflow.python.framework import op_def_registry

    from gradkit_grader.globalseed import _Watch

    def broken(name):
        raise RuntimeError("registry moved")

    monkeypatch.setattr(op_def_registry, "get", broken)
    assert _Watch.seeded("NotAnOpTheRegistryKnows_globalseed_test") is True


def test_functions_that_call_each_other_are_classified_by_what_they_reach(monkeypatch):
    """F calls G and a seeded op, G calls F: both reach the seeded op, whichever is asked first (G's answer found
    while F was being resolved is provisional, and is not kept)."""
    from gradkit_grader import globalseed

    graph = {"CycleF_globalseed_test": ["CycleG_globalseed_test", "Seeded_globalseed_test"],
             "CycleG_globalseed_test": ["CycleF_globalseed_test", "Plain_globalseed_test"],
             "Seeded_globalseed_test": True, "Plain_globalseed_test": False,
             "Lone_globalseed_test": ["Plain_globalseed_test", "Lone_globalseed_test"]}
    monkeypatch.setattr(globalseed, "_lookup", graph.__getitem__)
    monkeypatch.setattr(globalseed, "_KINDS", {})
    assert globalseed._Watch.seeded(b"CycleF_globalseed_test") is True
    assert globalseed._Watch.seeded("CycleG_globalseed_test") is True
    assert globalseed._Watch.seeded("Lone_globalseed_test") is False  # calls only itself and a plain op
    assert globalseed._KINDS == {"CycleF_globalseed_test": True, "CycleG_globalseed_test": True,
                                 "Seeded_globalseed_test": True, "Plain_globalseed_test": False,
                                 "Lone_globalseed_test": False}
