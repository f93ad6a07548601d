"""Model builders and registries: structure, pluggable components, seeding."""
import keras
import numpy as np
import pytest
from keras import ops

from gradkit import ACTIVATIONS, INITIALIZERS, build_mlp, build_resnet, get_activation, get_initializer
from gradkit.initializers import reseeded
from gradkit.models import BLOCKS
from gradkit_grader.course.a2_init.reference import compute_fans


def _dense(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def test_registries_resolve_and_reject():
    assert {"relu", "leaky_relu", "tanh", "sigmoid"} <= set(ACTIVATIONS)
    assert {"glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "uniform_0_1"} <= set(INITIALIZERS)
    with pytest.raises(KeyError, match="known"):
        get_activation("relu6")
    with pytest.raises(KeyError, match="known"):
        get_initializer("xavier")
    with pytest.raises(TypeError):
        get_activation(3)
    x = np.array([-2.0, 3.0], dtype="float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(get_activation("leaky_relu")(x)), [-0.02, 3.0])


@pytest.mark.parametrize("shape, fans", [((3, 5), (3, 5)), ((3, 3, 16, 32), (144, 288)), ((7,), (7, 7))])
def test_compute_fans_keras_convention(shape, fans):
    assert compute_fans(shape) == fans


def test_initializer_seeding_is_explicit():
    a = keras.ops.convert_to_numpy(get_initializer("he_normal", seed=1)((50, 40)))
    b = keras.ops.convert_to_numpy(get_initializer("he_normal", seed=1)((50, 40)))
    c = keras.ops.convert_to_numpy(get_initializer("he_normal", seed=2)((50, 40)))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    init = keras.initializers.GlorotUniform(seed=5)
    d = keras.ops.convert_to_numpy(reseeded(init, 6)((10, 10)))
    assert not np.array_equal(d, keras.ops.convert_to_numpy(init((10, 10))))
    assert reseeded(keras.initializers.Zeros(), 3).__class__ is keras.initializers.Zeros


def test_plain_function_initializer_gets_the_seed_bound():
    def my_normal(shape, dtype=None, seed=None):
        return keras.random.normal(shape, dtype=dtype, seed=seed)

    a = keras.ops.convert_to_numpy(get_initializer(my_normal, seed=1)((20, 20)))
    b = keras.ops.convert_to_numpy(get_initializer(my_normal, seed=2)((20, 20)))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(get_initializer(my_normal, seed=1)((20, 20))))
    no_seed = lambda shape, dtype=None: np.ones(shape)  # noqa: E731
    assert get_initializer(no_seed, seed=3) is no_seed
    m = build_mlp(3, 8, initializer=my_normal, input_dim=8, seed=0)
    k = [keras.ops.convert_to_numpy(layer.kernel) for layer in _dense(m)[:2]]
    assert not np.array_equal(k[0], k[1]), "each layer draws with its own seed"


@pytest.mark.backends
def test_build_mlp_structure_and_components():
    calls = []

    def my_act(x):
        calls.append(1)
        return keras.ops.tanh(x)

    m = build_mlp(31, 5, activation=my_act, initializer="uniform_0_1", seed=0)
    dense = _dense(m)
    assert len(dense) == 32 and dense[0].name == "hidden_1" and dense[-1].name == "output"
    m.predict(np.zeros((2, 2), "float32"), verbose=0)
    assert calls, "the user-supplied activation must be used"
    w = keras.ops.convert_to_numpy(dense[3].kernel)
    assert w.min() >= 0 and w.max() <= 1  # RandomUniform(0, 1), seed 004's bad init
    assert m.output_shape == (None, 1)
    # layer i seeded with seed + i: same seed -> same weights, layers differ
    m2 = build_mlp(31, 5, activation="tanh", initializer="uniform_0_1", seed=0)
    np.testing.assert_array_equal(w, keras.ops.convert_to_numpy(_dense(m2)[3].kernel))
    assert not np.array_equal(w, keras.ops.convert_to_numpy(_dense(m2)[4].kernel))


def test_build_mlp_batch_norm_and_errors():
    m = build_mlp(3, 8, batch_norm=True, input_dim=4, output_dim=3, output_activation="softmax")
    kinds = [type(layer).__name__ for layer in m.layers]
    assert kinds.count("BatchNormalization") == 3 and m.output_shape == (None, 3)
    with pytest.raises(ValueError):
        build_mlp(0, 5)


@pytest.mark.backends
def test_seed000_resnet_has_identity_skips():
    r = build_resnet(25, 5)
    adds = [layer for layer in r.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == 25
    assert len(_dense(r)) == 2 + 2 * 25 + 1 + 1  # stem, blocks, head, output (seed 000)
    # zero every block's second Dense: each Add then returns its skip input -> output unchanged
    x = np.random.default_rng(0).uniform(-1, 1, (8, 2)).astype("float32")
    r0 = build_resnet(0, 5)
    for layer in r.layers:
        if layer.name.endswith("_dense2"):
            layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
            layer.bias.assign(np.zeros(layer.bias.shape, "float32"))
    r0.set_weights([w for layer in r.layers if not layer.name.startswith("block") for w in layer.get_weights()])
    np.testing.assert_allclose(r.predict(x, verbose=0), r0.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_seed001_skip_net_and_custom_block():
    r = build_resnet(12, 16, block="dense_bn_relu", activation="relu", stem_layers=1, stem_batch_norm=True,
                     head_layers=0, input_dim=64, output_dim=10, output_activation="softmax")
    assert len(_dense(r)) == 26 and r.output_shape == (None, 10)  # 25 hidden + output, as seed 001
    seen = []

    def block(x, units, *, activation, initializer, seed, name):
        seen.append(name)
        return keras.layers.Add(name=f"{name}_add")([keras.layers.Dense(units, name=f"{name}_d")(x), x])

    build_resnet(3, 4, block=block)
    assert seen == ["block_1", "block_2", "block_3"]
    # seed 001's grid: the same skip net without batch normalisation ("skips only")
    s = build_resnet(12, 16, block="dense_relu", activation="relu", stem_layers=1, head_layers=0, input_dim=64,
                     output_dim=10, output_activation="softmax")
    assert len(_dense(s)) == 26 and not any(isinstance(la, keras.layers.BatchNormalization) for la in s.layers)
    x = np.random.default_rng(0).normal(size=(5, 16)).astype("float32")
    inp = keras.Input((16,))
    one = keras.Model(inp, BLOCKS["dense_relu"](inp, 16, seed=3, name="b"))
    d1, d2 = (one.get_layer(f"b_dense{i}") for i in (1, 2))
    h = np.maximum(x @ ops.convert_to_numpy(d1.kernel), 0)  # biases start at zero
    np.testing.assert_allclose(one(x), np.maximum(h @ ops.convert_to_numpy(d2.kernel) + h, 0), rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError):
        build_resnet(2, 4, block="bottleneck")
