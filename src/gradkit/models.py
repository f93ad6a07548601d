"""Builders for the deep plain and residual MLPs the course compares.

Every builder takes its components by name (see
:data:`gradkit.activations.ACTIVATIONS`, :data:`gradkit.initializers.INITIALIZERS`)
or as objects, so that a student's activation, initializer or residual block
plugs straight in. Seeds come in through ``seed=``: layer ``i`` gets the
initializer re-seeded with ``seed + i``.

Two residual blocks from the seed notebooks are provided:

* :func:`bn_dense_dense_block` (seed 000): ``x -> BN -> Dense -> Dense -> + x``;
* :func:`dense_bn_relu_block` (seed 001): ``h = act(BN(Dense(x)))``, then
  ``act(BN(Dense(h)) + h)``.

A block is any callable ``block(x, units, *, activation, initializer, seed,
name)`` returning a Keras tensor.
"""
from __future__ import annotations

from typing import Any, Callable

import keras
from keras import layers

from gradkit.activations import get_activation
from gradkit.initializers import get_initializer

__all__ = [
    "build_mlp", "build_resnet", "bn_dense_dense_block", "dense_bn_relu_block", "dense_relu_block", "BLOCKS",
]


def _dense(units: int, activation: Any, initializer: Any, seed: int | None, name: str | None):
    act = None if activation is None else get_activation(activation)
    return layers.Dense(units, activation=act, kernel_initializer=get_initializer(initializer, seed),
                        bias_initializer="zeros", name=name)


def _seed(seed: int | None, i: int) -> int | None:
    return None if seed is None else seed + i


def build_mlp(depth: int, width: int, *, activation: Any = "relu", initializer: Any = "glorot_uniform",
              input_dim: int = 2, output_dim: int = 1, output_activation: Any = "sigmoid",
              batch_norm: bool = False, output_initializer: Any = None, seed: int | None = 0,
              name: str = "plain_mlp") -> keras.Model:
    """A plain MLP: ``depth`` hidden Dense layers of ``width`` units, then an output layer.

    Parameters
    ----------
    depth : int
        Number of hidden layers (seed 000's "31-layer" net is depth 31).
    width : int
        Units per hidden layer.
    activation, initializer
        Registry names or objects (a student's function / initializer).
    batch_norm : bool
        Dense -> BatchNormalization -> activation per hidden layer (seed 001).
    output_initializer
        Initializer of the output layer; defaults to ``initializer``.
    seed : int or None
        Layer ``i`` is initialised with seed ``seed + i``.

    Returns
    -------
    keras.Model mapping (batch, input_dim) to (batch, output_dim). Hidden
    layers are named ``hidden_1`` ... ``hidden_<depth>`` (the Dense), the
    output layer ``output``.
    """
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be >= 1, got depth={depth}, width={width}")
    inputs = keras.Input((input_dim,), name="input")
    x = inputs
    for i in range(depth):
        if batch_norm:
            x = _dense(width, None, initializer, _seed(seed, i), f"hidden_{i + 1}")(x)
            x = layers.BatchNormalization(name=f"bn_{i + 1}")(x)
            x = layers.Activation(get_activation(activation), name=f"act_{i + 1}")(x)
        else:
            x = _dense(width, activation, initializer, _seed(seed, i), f"hidden_{i + 1}")(x)
    out_init = initializer if output_initializer is None else output_initializer
    outputs = _dense(output_dim, output_activation, out_init, _seed(seed, depth), "output")(x)
    return keras.Model(inputs, outputs, name=name)


def bn_dense_dense_block(x, units: int, *, activation: Any = "tanh", initializer: Any = "glorot_uniform",
                         seed: int | None = None, name: str = "block"):
    """Seed 000's block: ``BN -> Dense(act) -> Dense(act) -> Add([., x])``."""
    skip = x
    h = layers.BatchNormalization(name=f"{name}_bn")(x)
    h = _dense(units, activation, initializer, _seed(seed, 0), f"{name}_dense1")(h)
    h = _dense(units, activation, initializer, _seed(seed, 1), f"{name}_dense2")(h)
    return layers.Add(name=f"{name}_add")([h, skip])


def dense_bn_relu_block(x, units: int, *, activation: Any = "relu", initializer: Any = "glorot_uniform",
                        seed: int | None = None, name: str = "block"):
    """Seed 001's block (two layers, the skip around the second):
    ``h = act(BN(Dense(x)))``, then ``act(BN(Dense(h)) + h)``."""
    act = get_activation(activation)
    h = _dense(units, None, initializer, _seed(seed, 0), f"{name}_dense1")(x)
    h = layers.BatchNormalization(name=f"{name}_bn1")(h)
    h = layers.Activation(act, name=f"{name}_act1")(h)
    y = _dense(units, None, initializer, _seed(seed, 1), f"{name}_dense2")(h)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([y, h])
    return layers.Activation(act, name=f"{name}_act2")(y)


def dense_relu_block(x, units: int, *, activation: Any = "relu", initializer: Any = "glorot_uniform",
                     seed: int | None = None, name: str = "block"):
    """Seed 001's block without batch normalisation (the "skips only" net of its grid):
    ``h = act(Dense(x))``, then ``act(Dense(h) + h)``."""
    act = get_activation(activation)
    h = _dense(units, act, initializer, _seed(seed, 0), f"{name}_dense1")(x)
    y = _dense(units, None, initializer, _seed(seed, 1), f"{name}_dense2")(h)
    y = layers.Add(name=f"{name}_add")([y, h])
    return layers.Activation(act, name=f"{name}_act2")(y)


#: name -> residual block builder.
BLOCKS: dict[str, Callable[..., Any]] = {
    "bn_dense_dense": bn_dense_dense_block,
    "dense_bn_relu": dense_bn_relu_block,
    "dense_relu": dense_relu_block,
}


def build_resnet(blocks: int, width: int, *, block: Any = "bn_dense_dense", activation: Any = "tanh",
                 initializer: Any = "glorot_uniform", input_dim: int = 2, output_dim: int = 1,
                 output_activation: Any = "sigmoid", stem_layers: int = 2, head_layers: int = 1,
                 stem_batch_norm: bool = False, seed: int | None = 0, name: str = "resnet") -> keras.Model:
    """A residual MLP: ``stem_layers`` Dense, ``blocks`` residual blocks, ``head_layers`` Dense, output.

    With the defaults this is seed 000's ResNet (2 + 2 x 25 + 1 tanh Dense
    layers for ``blocks=25``, width 5). Seed 001's 25-layer skip net is
    ``build_resnet(12, 128, block="dense_bn_relu", activation="relu",
    stem_layers=1, stem_batch_norm=True, head_layers=0, input_dim=64,
    output_dim=10, output_activation="softmax")``.

    ``block`` is a name in :data:`BLOCKS` or any callable with the block
    signature (see the module docstring), e.g. a student's ``residual_block``.
    """
    if blocks < 0 or width < 1:
        raise ValueError(f"blocks must be >= 0 and width >= 1, got blocks={blocks}, width={width}")
    make_block = BLOCKS[block] if isinstance(block, str) else block
    if not callable(make_block):
        raise TypeError(f"block must be a name in {sorted(BLOCKS)} or a callable")
    inputs = keras.Input((input_dim,), name="input")
    x = inputs
    k = 0
    for i in range(stem_layers):
        if stem_batch_norm:  # Dense -> BN -> act, as seed 001's first layer
            x = _dense(width, None, initializer, _seed(seed, k), f"stem_{i + 1}")(x)
            x = layers.BatchNormalization(name=f"stem_bn_{i + 1}")(x)
            x = layers.Activation(get_activation(activation), name=f"stem_act_{i + 1}")(x)
        else:
            x = _dense(width, activation, initializer, _seed(seed, k), f"stem_{i + 1}")(x)
        k += 1
    for b in range(blocks):
        x = make_block(x, width, activation=activation, initializer=initializer,
                       seed=_seed(seed, k), name=f"block_{b + 1}")
        k += 2
    for i in range(head_layers):
        x = _dense(width, activation, initializer, _seed(seed, k), f"head_{i + 1}")(x)
        k += 1
    outputs = _dense(output_dim, output_activation, initializer, _seed(seed, k), "output")(x)
    return keras.Model(inputs, outputs, name=name)
