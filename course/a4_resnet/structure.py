"""What a4_resnet's exact hidden tests read off a student's block: its layers by role, and the spec's forward pass.

A block built by the student's ``residual_block`` arrives in the harness as a functional model (its layers
possibly nested, e.g. a ``keras.Sequential`` branch). :func:`block_roles` finds each layer the docstring names
by its place in the graph, not by its name (names are not graded): the projection is the ``Dense`` applied to
the block input whose output enters the ``Add``; the branch's ``Dense`` and ``BatchNormalization`` layers are
the others, in graph order. :func:`spec_forward` is the docstring's formula in float64 NumPy, with the
student's own parameters, so a test can set known weights and compare. Shipped only in this assignment's zip
(``gradkit_grader.course.a4_resnet.structure``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["BlockRoles", "block_roles", "ordered_layers", "randomize", "spec_forward", "ACTIVATIONS_NP"]

ACTIVATIONS_NP: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "linear": lambda z: z,
}


@dataclass
class BlockRoles:
    """The layers of one block by role; ``problems`` lists what does not match the docstring's structure."""

    dense: list = field(default_factory=list)  # branch Dense layers, graph order (the spec has 2)
    bn: list = field(default_factory=list)  # BatchNormalization layers, graph order (the spec has 2)
    proj: Any = None  # the skip's Dense projection (None: identity skip)
    adds: int = 0  # Add layers (the spec has 1)
    problems: list[str] = field(default_factory=list)


def _producer(t: Any) -> Any:
    hist = getattr(t, "_keras_history", None)
    return None if hist is None else hist[0]


def _inputs(op: Any) -> list:
    return [t for node in op._inbound_nodes for t in node.input_tensors]


def ordered_layers(model: Any) -> list:
    """Every layer of ``model`` in graph order, nested models expanded in place (Keras' own
    ``_flatten_layers`` lists a nested model's layers last first)."""
    import keras

    out = []
    for layer in model.layers:
        out.extend(ordered_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def block_roles(model: Any, inp: Any, units: int) -> BlockRoles:
    """The roles of the layers of ``model`` (the block applied to the symbolic input ``inp``).

    Parameters
    ----------
    model : keras.Model
        ``keras.Model(inp, residual_block(inp, units, ...))``.
    inp : KerasTensor of shape (batch, d)
    units : int

    Returns
    -------
    BlockRoles, with a student-readable sentence in ``problems`` for every structural difference from the
    docstring (layer counts, a projection where the widths match or none where they differ, a bias or an
    activation on the projection, an activation inside a Dense layer).
    """
    import keras

    roles = BlockRoles()
    adds = [op for op in model.operations if type(op).__name__ == "Add"]
    roles.adds = len(adds)
    everything = ordered_layers(model)
    dense = [layer for layer in everything if isinstance(layer, keras.layers.Dense)]
    roles.bn = [layer for layer in everything if isinstance(layer, keras.layers.BatchNormalization)]
    d = int(inp.shape[-1])
    for op in adds:
        for t in _inputs(op):
            layer = _producer(t)
            if isinstance(layer, keras.layers.Dense) and all(s is inp for s in _inputs(layer)):
                roles.proj = layer
    roles.dense = [layer for layer in dense if layer is not roles.proj]
    if len(adds) != 1:
        roles.problems.append(f"{len(adds)} Add layers; the block has exactly one (branch + skip)")
    if d == units and roles.proj is not None:
        roles.problems.append(f"input width {d} == units: the skip must be x itself, but a Dense projects it")
    if d != units and roles.proj is None:
        roles.problems.append(f"input width {d} != units {units}: no Dense projection of x enters the Add")
    if roles.proj is not None:
        if roles.proj.use_bias:
            roles.problems.append("the projection has a bias: the docstring asks for Dense(units, use_bias=False)")
        if getattr(roles.proj.activation, "__name__", "linear") != "linear":
            roles.problems.append("the projection has an activation: it must be linear (no activation, no BN)")
    if len(roles.dense) != 2:
        roles.problems.append(f"{len(roles.dense)} Dense layers in the residual branch; the docstring has 2")
    if len(roles.bn) != 2:
        roles.problems.append(f"{len(roles.bn)} BatchNormalization layers; the docstring has 2, one after each "
                              "Dense of the branch")
    for i, layer in enumerate(roles.dense):
        if getattr(layer.activation, "__name__", "linear") != "linear":
            roles.problems.append(f"the branch's Dense layer {i + 1} has activation {layer.activation.__name__!r}: "
                                  "the Dense layers are linear; act comes after BatchNormalization")
    return roles


def randomize(roles: BlockRoles, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Give every parameter of the block a known non-trivial value; returns them by role.

    Dense kernels ~ N(0, 1/fan_in) (O(1) outputs), biases ~ N(0, 0.5^2); BatchNormalization: gamma ~
    U(0.5, 1.5), beta ~ N(0, 0.5^2), moving mean ~ N(0, 0.5^2), moving variance ~ U(0.5, 2). A parameter the
    student's layer lacks (a BN without scale, a bias-free branch Dense) is drawn all the same, so the
    spec's forward pass uses it and the outputs differ.
    """
    values: dict[str, np.ndarray] = {}
    for i, layer in enumerate(roles.dense):
        fan_in, units = (int(s) for s in layer.kernel.shape)
        values[f"dense{i + 1}.kernel"] = rng.normal(0.0, fan_in ** -0.5, (fan_in, units)).astype("float32")
        values[f"dense{i + 1}.bias"] = rng.normal(0.0, 0.5, units).astype("float32")
        layer.kernel.assign(values[f"dense{i + 1}.kernel"])
        if layer.bias is not None:
            layer.bias.assign(values[f"dense{i + 1}.bias"])
    if roles.proj is not None:
        fan_in, units = (int(s) for s in roles.proj.kernel.shape)
        values["proj.kernel"] = rng.normal(0.0, fan_in ** -0.5, (fan_in, units)).astype("float32")
        roles.proj.kernel.assign(values["proj.kernel"])
    for i, layer in enumerate(roles.bn):
        n = int(layer.moving_mean.shape[-1])
        draws = {"gamma": rng.uniform(0.5, 1.5, n), "beta": rng.normal(0.0, 0.5, n),
                 "moving_mean": rng.normal(0.0, 0.5, n), "moving_variance": rng.uniform(0.5, 2.0, n)}
        for key, value in draws.items():
            values[f"bn{i + 1}.{key}"] = value.astype("float32")
            var = getattr(layer, key, None)
            if var is not None:
                var.assign(values[f"bn{i + 1}.{key}"])
        values[f"bn{i + 1}.epsilon"] = np.float64(layer.epsilon)  # its hyper-parameters are not graded
    return values


def spec_forward(x: np.ndarray, values: dict[str, np.ndarray], activation: str) -> np.ndarray:
    """The docstring's block in float64: ``act(BN2(Dense2(act(BN1(Dense1(x))))) + skip(x))``, inference-mode BN.

    Parameters
    ----------
    x : array of shape (n, d)
    values : what :func:`randomize` returned (two branch Dense layers and two BN layers)
    activation : a key of :data:`ACTIVATIONS_NP`

    Returns
    -------
    array of shape (n, units)
    """
    act = ACTIVATIONS_NP[activation]
    v = {k: np.asarray(a, np.float64) for k, a in values.items()}

    def bn(h: np.ndarray, i: int) -> np.ndarray:
        p = f"bn{i}."
        return v[p + "gamma"] * (h - v[p + "moving_mean"]) / np.sqrt(v[p + "moving_variance"] + v[p + "epsilon"]) \
            + v[p + "beta"]

    x = np.asarray(x, np.float64)
    h = act(bn(x @ v["dense1.kernel"] + v["dense1.bias"], 1))
    h = bn(h @ v["dense2.kernel"] + v["dense2.bias"], 2)
    skip = x @ v["proj.kernel"] if "proj.kernel" in v else x
    return act(h + skip)
