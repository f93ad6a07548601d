"""Tests of gradkit.diagnostics.

Tests marked ``backends`` make no TensorFlow-specific assumption and are
re-run under ``KERAS_BACKEND=jax``. Float64 models on JAX need 64-bit mode,
which :func:`_float64` switches on for the duration of one test only.
"""
from __future__ import annotations

import contextlib
import math
import sys

import keras
import numpy as np
import pytest
from scipy import stats as st

from gradkit.diagnostics import (
    GradientHistogramCallback,
    activation_stats,
    gradient_norms,
    gradients,
    layer_outputs,
)
from gradkit_grader.course.a2_init.reference import activation_std

BACKEND = keras.backend.backend()
Dense = keras.layers.Dense


def _float64():
    """Context in which float64 arrays stay float64 on the current backend."""
    if BACKEND == "jax":
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def _init(seed: int):
    return keras.initializers.GlorotUniform(seed=seed)


def _np(t) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(t))


# ---------------------------------------------------------------------------
# gradients / gradient_norms
# ---------------------------------------------------------------------------

def _tiny_float64_model(out_units: int, out_activation: str, seed: int) -> keras.Model:
    kw = dict(dtype="float64")
    inp = keras.Input((3,), dtype="float64")
    h = inp
    for i, units in enumerate((5, 4)):
        h = Dense(units, activation="sigmoid", name=f"h{i}",
                  kernel_initializer=keras.initializers.GlorotNormal(seed=seed + i),
                  bias_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed + 10 + i),
                  **kw)(h)
    out = Dense(out_units, activation=out_activation, name="out",
                kernel_initializer=keras.initializers.GlorotNormal(seed=seed + 2),
                bias_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed + 12),
                **kw)(h)
    return keras.Model(inp, out)


def _np_mse(y, p):
    return np.mean((p - y) ** 2)


def _np_bce(y, p):
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def _np_scce(y, p):
    return -np.mean(np.log(p[np.arange(len(y)), y]))


LOSS_CASES = {
    # loss name: (output units, output activation, targets(rng, n), numpy loss)
    "mse": (2, "linear", lambda r, n: r.normal(size=(n, 2)), _np_mse),
    "binary_crossentropy": (1, "sigmoid",
                            lambda r, n: r.integers(0, 2, size=(n, 1)).astype("float64"), _np_bce),
    "sparse_categorical_crossentropy": (3, "softmax", lambda r, n: r.integers(0, 3, size=n),
                                        _np_scce),
}


@pytest.mark.backends
@pytest.mark.parametrize("loss", list(LOSS_CASES))
def test_gradient_norms_match_central_differences(loss):
    """Autodiff gradients of a float64 model vs central differences of the loss.

    The reference perturbs each weight w by +-h in the Keras model and
    recomputes the loss in NumPy: g_fd = (L(w+h) - L(w-h)) / 2h. Its error
    is h^2/6 |L'''| (truncation) + ~eps64 |L| / h (rounding). Here |L| and
    |L'''| are O(1) (3-5-4-k sigmoid network, inputs and weights O(1)), so
    with h = 1e-5 both terms are below 1e-10. We allow atol = 1e-8 and
    rtol = 1e-6 per element and rtol = 1e-6 on the norms: two orders of
    magnitude above the error budget, many below any real bug (a wrong sign,
    a missing 1/n, a gradient w.r.t. the wrong layer).

    Sigmoid, not tanh, hidden units: with JAX's 64-bit mode switched on after
    Keras 3.15 is imported, ``keras.ops.tanh`` (and ``ops.mean``) compute
    float64 inputs in float32, and central differences of a float32 tanh
    are noise at h = 1e-5. The float32 reduction in ``ops.mean`` only rounds
    the loss's cotangent (relative 6e-8), well inside rtol.
    """
    units, act, make_y, np_loss = LOSS_CASES[loss]
    rng = np.random.default_rng(12)
    n, h = 16, 1e-5
    with _float64():
        model = _tiny_float64_model(units, act, seed=3)
        x = rng.normal(size=(n, 3))
        y = make_y(rng, n)
        grads = gradients(model, x, y, loss, include_bias=True)
        norms = gradient_norms(model, x, y, loss, include_bias=True)

        fd = {}
        for v in model.trainable_variables:
            w0 = _np(v.value).astype(np.float64)
            g = np.zeros_like(w0)
            for idx in np.ndindex(w0.shape):
                losses = []
                for sign in (1.0, -1.0):
                    w = w0.copy()
                    w[idx] += sign * h
                    v.assign(w)
                    losses.append(np_loss(y, _np(model(x)).astype(np.float64)))
                g[idx] = (losses[0] - losses[1]) / (2 * h)
            v.assign(w0)
            fd[v.path] = g
        assert _np(model.trainable_variables[0].value).dtype == np.float64

    assert list(grads) == list(fd)  # every kernel and bias, input side first
    for path, g in grads.items():
        np.testing.assert_allclose(g, fd[path], rtol=1e-6, atol=1e-8, err_msg=path)
    for path, nrm in norms.items():
        ref = float(np.linalg.norm(fd[path]))
        assert abs(nrm - ref) <= 1e-6 * ref + 1e-8, (path, nrm, ref)


@pytest.mark.backends
def test_gradient_selection_order_and_loss_specs():
    """Kernels only by default (conv included, batch-norm and biases not),
    input side first; a callable loss, a Loss instance and the compiled loss
    give the same numbers as the name."""
    inp = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(3, 3, activation="relu", name="conv", kernel_initializer=_init(1))(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Flatten()(h)
    d1 = Dense(4, activation="relu", name="d1", kernel_initializer=_init(2))(h)
    d2 = Dense(4, activation="relu", name="d2", kernel_initializer=_init(3))(d1)
    out = Dense(1, name="out", kernel_initializer=_init(4))(keras.layers.Add()([d1, d2]))
    model = keras.Model(inp, out, name="m")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")

    names = ["conv", "d1", "d2", "out"]
    norms = gradient_norms(model, x, y)
    assert list(norms) == [model.get_layer(k).kernel.path for k in names]
    assert list(norms)[0].endswith("conv/kernel")
    assert all(isinstance(v, float) and v > 0 for v in norms.values())
    with_bias = gradient_norms(model, x, y, include_bias=True)
    assert list(with_bias) == [w.path for k in names for w in (model.get_layer(k).kernel,
                                                               model.get_layer(k).bias)]
    assert gradients(model, x, y)[model.get_layer("conv").kernel.path].shape == (3, 3, 2, 3)

    by_callable = gradient_norms(model, x, y, lambda t, p: keras.ops.square(t - p))
    by_instance = gradient_norms(model, x, y, keras.losses.MeanSquaredError())
    model.compile(loss="mse")
    by_compiled = gradient_norms(model, x, y, None)
    for other in (by_callable, by_instance, by_compiled):
        np.testing.assert_allclose(list(other.values()), list(norms.values()), rtol=1e-5)


@pytest.mark.backends
def test_training_mode_gradients_leave_batchnorm_statistics_alone():
    model = keras.Sequential([keras.Input((3,)), Dense(4, kernel_initializer=_init(1)),
                              keras.layers.BatchNormalization(),
                              Dense(1, kernel_initializer=_init(2))])
    x = np.random.default_rng(0).normal(loc=3.0, scale=5.0, size=(8, 3)).astype("float32")
    y = np.zeros((8, 1), "float32")
    before = [_np(v.value).copy() for v in model.non_trainable_variables]
    train = gradient_norms(model, x, y, training=True)
    infer = gradient_norms(model, x, y, training=False)
    for b, v in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(_np(v.value), b)
    # the flag reaches the model: batch statistics (training) differ from the
    # moving ones (mean 0, variance 1) on this batch of mean 3 and scale 5
    assert all(abs(train[k] - infer[k]) > 1e-3 * infer[k] for k in train)


def test_gradient_errors():
    model = keras.Sequential([keras.Input((2,)), Dense(1, kernel_initializer=_init(0))])
    with pytest.raises(ValueError, match="compiled"):
        gradient_norms(model, np.zeros((2, 2)), np.zeros((2, 1)), None)
    with pytest.raises(TypeError):
        gradient_norms(model, np.zeros((2, 2)), np.zeros((2, 1)), 3)
    with pytest.raises(ValueError, match="no trainable kernels"):
        gradient_norms(keras.Sequential([keras.Input((2,)), keras.layers.ReLU()]),
                       np.zeros((2, 2)), np.zeros((2, 2)))


# ---------------------------------------------------------------------------
# layer outputs and activation statistics
# ---------------------------------------------------------------------------

@pytest.mark.backends
def test_layer_outputs_order_selection_and_values():
    model = keras.Sequential([
        keras.Input((3,)),
        Dense(4, activation="tanh", name="a", kernel_initializer=_init(1)),
        Dense(2, name="b", kernel_initializer=keras.initializers.GlorotNormal(seed=2)),
    ])
    x = np.random.default_rng(1).normal(size=(7, 3)).astype("float32")
    outs = layer_outputs(model, x)
    assert list(outs) == ["a", "b"]
    assert outs["a"].shape == (7, 4) and outs["b"].shape == (7, 2)
    np.testing.assert_allclose(outs["b"], _np(model(x)), rtol=1e-6, atol=1e-6)
    kernel, bias = (_np(w) for w in model.get_layer("a").weights)
    np.testing.assert_allclose(outs["a"], np.tanh(x @ kernel + bias), rtol=1e-5, atol=1e-6)
    assert list(layer_outputs(model, x, ["b"])) == ["b"]
    assert list(layer_outputs(model, x, [0])) == ["a"]
    chunked = layer_outputs(model, x, batch_size=3)
    np.testing.assert_allclose(chunked["b"], outs["b"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(activation_std(model, x), [outs["a"].std(), outs["b"].std()],
                               rtol=1e-5)


def test_layer_outputs_rejects_subclassed_model():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = Dense(2, kernel_initializer=_init(0))

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="functional"):
        layer_outputs(net, np.zeros((1, 3), "float32"))


def _set(layer, kernel, bias):
    layer.set_weights([np.asarray(kernel, "float32"), np.asarray(bias, "float32")])


@pytest.mark.backends
def test_dead_fraction_on_constructed_dead_units():
    """Hidden unit j computes relu(x[j % 4] + b_j) with x in [-1, 1]^4.
    Units 0-2 have b = -10, so their pre-activation is <= -9 for every
    input: dead, and their kernel columns get exactly zero gradient. Units
    3-5 have b = 0 and are positive on about half the inputs."""
    model = keras.Sequential([keras.Input((4,)), Dense(6, activation="relu", name="hidden"),
                              Dense(1, name="out")])  # weights set below
    _set(model.get_layer("hidden"), np.eye(4)[:, [0, 1, 2, 3, 0, 1]], [-10, -10, -10, 0, 0, 0])
    _set(model.get_layer("out"), np.ones((6, 1)), [0.0])
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, size=(200, 4)).astype("float32")

    stats = {row["name"]: row for row in activation_stats(model, x)}
    assert stats["hidden"]["dead_fraction"] == 0.5
    assert stats["hidden"]["activation"] == "relu"
    assert math.isnan(stats["hidden"]["saturation_fraction"])
    # with a tolerance above every output, every unit counts as dead
    assert activation_stats(model, x, ["hidden"], dead_tol=1.0)[0]["dead_fraction"] == 1.0

    g = gradients(model, x, rng.normal(size=(200, 1)).astype("float32"))
    g_hidden = g[model.get_layer("hidden").kernel.path]
    assert np.all(g_hidden[:, :3] == 0.0)
    assert np.all(np.abs(g_hidden[[3, 0, 1], [3, 4, 5]]) > 0)


@pytest.mark.backends
@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_saturation_fraction(act):
    """Unit 0 sees +-10 (tanh(10), sigmoid(10) are within 1e-4 of the
    bound), unit 1 sees +-0.001 (mid-range): half of the values saturate."""
    model = keras.Sequential([keras.Input((1,)), Dense(2, activation=act, name="s")])  # set below
    _set(model.get_layer("s"), [[10.0, 0.001]], [0.0, 0.0])
    x = np.array([[1.0], [-1.0]] * 5, "float32")
    row = activation_stats(model, x)[0]
    assert row["activation"] == act
    assert row["saturation_fraction"] == 0.5
    assert row["dead_fraction"] == 0.0


@pytest.mark.backends
@pytest.mark.parametrize("init, ratio", [("he_normal", 1.0), ("glorot_normal", 0.5)])
def test_relu_second_moment_he_constant_glorot_halves(init, ratio):
    """Mean-square activation through 5 ReLU Dense layers, width m = 500.

    Derivation. Let q_l be the mean of a_l^2 over the n x m outputs of layer
    l (q_0 over the N(0, 1) inputs). Given layer l-1, unit j of layer l emits
    relu(z) with z = w_j . a(x), where the m entries of w_j are i.i.d.,
    symmetric, of variance v: 2/fan_in for He, 2/(fan_in+fan_out) = 1/m for
    Glorot (Keras' truncated normals are rescaled to exactly that variance).
    Over w_j, E relu(z)^2 = E z^2 / 2 = v |a(x)|^2 / 2, hence
        E[q_l | layer l-1] = (m v / 2) q_{l-1},  ratio c = 1 (He), 1/2 (Glorot).
    Fluctuation: E z^4 <= 3 (E z^2)^2 (kurtosis of the weights <= 3), so
    Var relu(z)^2 <= (3/2 - 1/4)(v|a|^2)^2, i.e. CV <= sqrt(5) per input, and
    an average over inputs has CV no larger. The m units are independent
    given layer l-1, so r_l = q_l / q_{l-1} has mean c and
        sd(r_l) / c <= sqrt(5 / m) = 0.1,
    whatever n is. With a normal approximation (sum of 500 i.i.d. terms) and
    a Bonferroni split of alpha = 1e-3 over the 2 x 5 ratios of the two
    parametrised cases, |r_l / c - 1| <= delta = z_{1 - alpha/20} sqrt(5/m)
    ~ 0.39. The He band [0.61, 1.39] and the Glorot band [0.31, 0.69] are
    disjoint, so the test tells the two regimes apart.
    """
    from gradkit.initializers import get_initializer

    m, n, depth = 500, 512, 5
    x = np.random.default_rng(2024).normal(size=(n, m)).astype("float32")
    model = keras.Sequential(
        [keras.Input((m,))]
        + [Dense(m, activation="relu", kernel_initializer=get_initializer(init, seed=100 + i),
                 bias_initializer="zeros", name=f"relu{i}") for i in range(depth)]
    )
    q = [float(np.mean(x.astype(np.float64) ** 2))]
    q += [row["mean_square"] for row in activation_stats(model, x)]
    ratios = np.array(q[1:]) / np.array(q[:-1])

    alpha, n_ratios = 1e-3, 2 * depth
    delta = st.norm.ppf(1 - alpha / (2 * n_ratios)) * math.sqrt(5 / m)
    assert 0.38 < delta < 0.40
    assert np.all(np.abs(ratios / ratio - 1) <= delta), ratios


# ---------------------------------------------------------------------------
# TensorBoard callback
# ---------------------------------------------------------------------------

def _read_events(run_dir):
    import tensorflow as tf

    seen = {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                seen[(event.step, value.tag)] = value
    return seen


def _small_classifier(seed=0):
    return keras.Sequential([
        keras.Input((3,)),
        Dense(4, activation="relu", name="h",
              kernel_initializer=keras.initializers.HeNormal(seed=seed)),
        Dense(1, activation="sigmoid", name="out",
              kernel_initializer=keras.initializers.GlorotNormal(seed=seed + 1)),
    ], name="clf")


@pytest.mark.backends
def test_gradient_histogram_callback_writes_tags_per_epoch(tmp_path):
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = _small_classifier()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    cb = GradientHistogramCallback(tmp_path, x, y, freq=1)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False, callbacks=[cb])

    kernels = [model.get_layer(k).kernel.path for k in ("h", "out")]
    seen = _read_events(tmp_path / "train")
    for epoch in (0, 1):
        for path in kernels:
            for kind in ("gradients", "weights"):
                value = seen[(epoch, f"{kind}/{path}")]
                assert value.metadata.plugin_data.plugin_name == "histograms"
            logged = float(tf.make_ndarray(seen[(epoch, f"gradient_norm/{path}")].tensor))
            assert logged == pytest.approx(cb.norms[epoch][path], rel=1e-6)
        assert (epoch, "gradient_norm/global") in seen
    assert {step for step, _ in seen} == {0, 1}
    # the last log is taken on the final weights
    final = gradient_norms(model, x, y, "binary_crossentropy")
    np.testing.assert_allclose(list(cb.norms[1].values()), list(final.values()), rtol=1e-5)


def test_gradient_histogram_callback_freq(tmp_path):
    pytest.importorskip("tensorflow")
    model = _small_classifier()
    x, y = np.ones((4, 3), "float32"), np.ones((4, 1), "float32")
    cb = GradientHistogramCallback(tmp_path, x, y, loss="binary_crossentropy", freq=2,
                                   log_weights=False, include_bias=True)
    cb.set_model(model)
    cb.on_train_begin()
    for epoch in range(5):
        cb.on_epoch_end(epoch)
    cb.on_train_end()
    assert sorted(cb.norms) == [0, 2, 4]
    assert len(cb.norms[0]) == 4  # two kernels, two biases
    seen = _read_events(tmp_path / "train")
    assert not any(tag.startswith("weights/") for _, tag in seen)
    with pytest.raises(ValueError, match="freq"):
        GradientHistogramCallback(tmp_path, x, y, freq=0)


def test_gradient_histogram_callback_needs_tensorflow(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
    with pytest.raises(ImportError, match="tensorflow"):
        GradientHistogramCallback(tmp_path, np.zeros((1, 1)), np.zeros((1, 1)))
