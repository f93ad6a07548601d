"""gradkit.stacking: M models of one architecture as one member-axis model, against the M models themselves.

The reference is each original Keras model run on its own (Keras' own Dense, BatchNormalization, Add).
Tolerances: float32 (eps 1.2e-7) through a few layers gives differences of a few eps, so atol 1e-5 /
rtol 1e-4 for outputs; BN in training mode computes its statistics in another order than Keras'
layer, and a deep chain amplifies that, so the deep check uses atol 1e-3 (measured: 1.6e-4 after 15
BN blocks of width 5).
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from gradkit import models
from gradkit._ensemble_layers import EnsembleDense
from gradkit.stacking import EnsembleBatchNorm, NotStackable, member_inputs, stack_models, summed_bce, unstack

backends = pytest.mark.backends
X = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
Y = (X[:, :1] > 0).astype("float32")


def lab_resnets(m: int, blocks: int = 2):
    return [models.build_resnet(blocks, 5, activation="tanh", input_dim=3, seed=100 * k) for k in range(m)]


def outputs(nets, training=False):
    return [keras.ops.convert_to_numpy(n(X, training=training)) for n in nets]


@backends
def test_stacked_outputs_are_each_models_outputs():
    nets = lab_resnets(3)  # stem Dense x2, BN -> Dense -> Dense -> Add blocks, head, sigmoid output
    st = stack_models(nets)
    assert st.input.shape[1:] == (3, 3) and st.output.shape[1:] == (1, 3)
    assert any(isinstance(layer, EnsembleBatchNorm) for layer in st.layers)
    for training in (False, True):
        got = unstack(st(member_inputs(X, 3), training=training))
        for g, want in zip(got, outputs(nets, training)):
            np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)


def test_a_deep_batch_normalised_net_agrees_in_training_mode():
    nets = [models.build_mlp(12, 5, activation="tanh", batch_norm=True, input_dim=3, seed=k) for k in range(2)]
    got = unstack(stack_models(nets)(member_inputs(X, 2), training=True))
    for g, want in zip(got, outputs(nets, training=True)):
        np.testing.assert_allclose(g, want, rtol=0, atol=1e-3)


@backends
def test_training_the_stack_trains_each_member_as_alone():
    """One SGD step on the summed loss moves every member's weights as its own step would."""
    nets, alone = lab_resnets(2), lab_resnets(2)
    st = stack_models(nets)
    st.compile(optimizer=keras.optimizers.SGD(0.1), loss=summed_bce)
    st.fit(member_inputs(X, 2), np.repeat(Y[:, :, None], 2, axis=2), batch_size=len(X), epochs=1, verbose=0)
    for net in alone:
        net.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
        net.fit(X, Y, batch_size=len(X), epochs=1, verbose=0)
    dense = [layer for layer in st.layers if isinstance(layer, EnsembleDense)]
    for k, net in enumerate(alone):
        kernels = [keras.ops.convert_to_numpy(layer.kernel) for layer in net.layers if isinstance(layer, layers.Dense)]
        assert len(kernels) == len(dense)
        for mine, theirs in zip(dense, kernels):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(mine.kernel)[..., k], theirs, rtol=1e-4, atol=1e-5)


def test_sequential_models_and_nested_blocks():
    def seq(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((3,)), layers.Dense(4, use_bias=False), layers.LeakyReLU(0.2),
                                 layers.Dense(4), layers.ReLU(), layers.Dense(1, activation="sigmoid")])

    nets = [seq(1), seq(2)]
    for g, want in zip(unstack(stack_models(nets)(member_inputs(X, 2))), outputs(nets)):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)

    def nested(seed):
        keras.utils.set_random_seed(seed)
        inner = keras.Sequential([keras.Input((3,)), layers.Dense(3), layers.BatchNormalization()], name="branch")
        x = keras.Input((3,))
        return keras.Model(x, layers.Dense(1)(layers.Activation("elu")(layers.Add()([inner(x), x]))))

    nets = [nested(1), nested(2)]
    for g, want in zip(unstack(stack_models(nets)(member_inputs(X, 2), training=True)), outputs(nets, True)):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)


def test_what_cannot_be_stacked_is_named():
    def with_dropout(seed):
        x = keras.Input((3,))
        return keras.Model(x, layers.Dense(1)(layers.Dropout(0.5, name="drop")(layers.Dense(4)(x))))

    with pytest.raises(NotStackable, match="'drop' \\(Dropout\\)"):
        stack_models([with_dropout(0), with_dropout(1)])
    x = keras.Input((3,))
    softmax = keras.Model(x, layers.Activation("softmax", name="probs")(layers.Dense(2)(x)))
    with pytest.raises(NotStackable, match="softmax"):
        stack_models([softmax, softmax])
    with pytest.raises(NotStackable, match="differ"):
        stack_models([models.build_mlp(2, 4, input_dim=3), models.build_mlp(3, 4, input_dim=3)])
    with pytest.raises(NotStackable, match="no models"):
        stack_models([])


@backends
def test_weights_in_place_of_the_models_own():
    """One net given three times with three nets' weights stacks as the three nets themselves, bit for bit; a
    None entry keeps that net's own weights; weights of the wrong length are refused, naming the entry."""
    nets = lab_resnets(3)
    weights = [([v.value for v in n.trainable_variables], [v.value for v in n.non_trainable_variables])
               for n in nets]
    want = keras.ops.convert_to_numpy(stack_models(nets)(member_inputs(X, 3), training=True))
    got = stack_models([nets[2]] * 3, weights=[weights[0], weights[1], None])(member_inputs(X, 3), training=True)
    assert np.array_equal(keras.ops.convert_to_numpy(got), want)
    with pytest.raises(ValueError, match=r"weights\[1\] has 1 trainable"):
        stack_models(nets[:2], weights=[None, (weights[1][0][:1], weights[1][1])])
    with pytest.raises(ValueError, match="2 entries for 3 models"):
        stack_models(nets, weights=weights[:2])
