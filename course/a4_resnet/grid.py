"""Seed 001's grid as a4_resnet's question 3 grades it: which network's gradient vanishes, whose explodes.

Seed 001 compares the gradients of a 25-layer, 128-unit ReLU network with and without batch
normalisation and with and without skips (the lab's block, whose skip jumps over one layer); part 5 of
the notebook builds the four networks on the digits and prints, at initialisation, each one's first
kernel's gradient norm and the spread of its kernels' norms (largest / smallest). The student names two
of them (keys of the notebook's ``digit_nets``); the hidden test rebuilds the grid at ``grid_seeds`` seeds
derived from the submission's and checks both names against their averages (one grid separates BN only
from skips + BN by about 4 standard deviations, three by about 7).

The gradients at initialisation of q2's and q3's nets come from :func:`kernel_gradient_norms` (the floats of
:func:`gradkit.diagnostics.gradient_norms`, one traced gradient per architecture) and gradkit's own nets are
not built per seed: :func:`redrawn` (:func:`seeded_net` for :mod:`gradkit.models`' builders) redraws a template's
weights, for the plain nets when graded and for the reference's ResNets in calibration (both bit for bit;
tests/test_batched_a4.py).
"""
from __future__ import annotations

import json
import math
import weakref
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Callable, Hashable, Mapping

import keras
import numpy as np

from gradkit import data, diagnostics, models
from gradkit._autodiff import kernel_variables, mean_loss, variable_keys
from gradkit._ensemble_layers import derive_seed
from gradkit.activations import ACTIVATIONS
from gradkit.initializers import reseeded

__all__ = ["NETS", "kernel_gradient_norms", "redrawn", "seeded_net", "grid_norms", "grid_summary", "grid_margin",
           "reference"]

#: the notebook's names (keys of its ``digit_nets``) of seed 001's four networks
NETS = ("plain", "BN only", "skips only", "skips + BN (the lab's)")


# --------------------------------------------------------------------------- gradients at initialisation

#: layer types whose output is fixed by their config and weights: a functional net of only these (with a known
#: activation) is one computation per architecture, so one traced gradient serves every net of it
_LAYERS = (keras.layers.InputLayer, keras.layers.Dense, keras.layers.BatchNormalization, keras.layers.Activation,
           keras.layers.Add)
_ACTIVATIONS = (*ACTIVATIONS.values(), *(getattr(keras.activations, n) for n in
                                         ("linear", "relu", "tanh", "sigmoid", "softmax", "elu", "selu")))
#: (architecture, loss) -> traced gradient of the first net of that architecture; the oldest goes beyond 8
_TRACED: dict[tuple[str, str], Any] = {}


#: template net of :func:`redrawn` -> its :func:`_architecture` key (a template is fed again and again)
_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _architecture(model: keras.Model) -> str | None:
    """A key equal for two nets exactly when they compute the same function of their weights (the Functional
    config with layer names, initializers and seeds left out, the wiring by layer index, each weight's layer, shape
    and dtype); None for anything else (a subclassed model, another layer type, a custom activation)."""
    if model in _KEYS:
        return _KEYS[model]
    # a net built as keras.Model(inputs, outputs): Keras' own Functional class, which Keras does not export (no
    # Sequential, no subclass of Model); a class of another name or module takes the eager path
    functional = type(model).__name__ == "Functional" and type(model).__module__.split(".")[0] == "keras"
    ops = model.operations if functional else [None]
    if any(type(op) not in _LAYERS for op in ops) or any(
            getattr(op, "activation", None) is not None and not any(op.activation is f for f in _ACTIVATIONS)
            for op in ops):
        return None
    index = {op.name: i for i, op in enumerate(ops)}
    owner = {id(v): (i, j) for i, op in enumerate(ops) for j, v in enumerate(op.weights)}
    weights = [[owner.get(id(v)), tuple(v.shape), str(v.dtype)] for v in model.trainable_variables] + \
        [None] + [[owner.get(id(v)), tuple(v.shape), str(v.dtype)] for v in model.non_trainable_variables]
    ends = [[[index[t._keras_history.operation.name], *t._keras_history[1:]] for t in ts]
            for ts in (model.inputs, model.outputs)]
    if len(index) != len(ops) or any(w is not None and w[0] is None for w in weights):
        return None

    def strip(obj):
        if isinstance(obj, dict):
            return {k: [index.get(v[0], -1), *v[1:]] if k == "keras_history" else strip(v) for k, v in obj.items()
                    if k not in ("name", "input_layers", "output_layers") and not k.endswith("_initializer")}
        return [strip(v) for v in obj] if isinstance(obj, (list, tuple)) else obj

    try:
        return json.dumps([strip(model.get_config()), ends, weights], sort_keys=True, default=repr)
    except Exception:  # noqa: BLE001 - a config that does not serialise: no shared trace
        return None


@contextmanager
def _as_eager():
    """TensorFlow graphs run op by op as eager code does: Grappler off (its fusions, e.g. MatMul + BiasAdd + tanh,
    change the last bits), restored after."""
    import tensorflow as tf

    saved = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(saved)


def _traced(key: tuple[str, str], model: keras.Model, loss: str):
    """The traced gradient of the kernels of nets of ``model``'s architecture (``model`` is the template):
    ``f(trainable values, non-trainable values, x, y) -> [kernel gradients]``, training-mode call."""
    import tensorflow as tf

    if key not in _TRACED:
        loss_fn, kernels = mean_loss(loss, model), {id(v) for v in kernel_variables(model)}
        wanted = [i for i, v in enumerate(model.trainable_variables) if id(v) in kernels]

        @tf.function(jit_compile=False)
        def grads(trainable, non_trainable, x, y):
            with tf.GradientTape() as tape:
                tape.watch(trainable)
                y_pred, _ = model.stateless_call(trainable, non_trainable, x, training=True)
                value = loss_fn(y, y_pred)
            return tape.gradient(value, [trainable[i] for i in wanted], unconnected_gradients="zero")

        _remember(_TRACED, key, grads, 8)
    return _TRACED[key]


def kernel_gradient_norms(model: keras.Model, x: np.ndarray, y: np.ndarray, loss: str,
                          weights: tuple[list, list] | None = None) -> dict[str, float]:
    """:func:`gradkit.diagnostics.gradient_norms` ``(model, x, y, loss, training=True)``, the same floats bit for
    bit, faster for many nets of one architecture: one traced gradient per architecture (:func:`_architecture`),
    fed each net's weights, and run op by op as eager code (:func:`_as_eager`). Any other net: eagerly.

    Parameters
    ----------
    model : keras.Model
        A built net; not modified.
    x : numpy.ndarray, shape ``(n, n_features)``
    y : numpy.ndarray, shape ``(n, 1)`` floats or ``(n,)`` integer labels, as ``loss`` takes them
    loss : str
        A Keras loss name.
    weights : (trainable values, non-trainable values), optional
        Weights in place of ``model``'s own (:func:`redrawn`'s); only for a net with a traced gradient.

    Returns
    -------
    dict of str -> float
        Kernel path -> norm of its gradient, input side first.
    """
    key = _architecture(model) if keras.backend.backend() == "tensorflow" else None
    if key is None:
        if weights is not None:
            raise ValueError(f"weights= needs a net with a traced gradient; {model.name} has none")
        return diagnostics.gradient_norms(model, x, y, loss, training=True)
    out = _run_traced(_traced((key, loss), model, loss), model, weights, x, y)
    return {k: float(np.linalg.norm(np.asarray(g).astype(np.float64).ravel()))
            for k, g in zip(variable_keys(kernel_variables(model)), out)}


#: seed of the template net of :func:`redrawn`; seed 1's net checks the redrawing
_TEMPLATE_SEED = 0
#: key -> (template net, per variable its initializer and seed offset, or None: build each net); the oldest goes
#: beyond 8
_TEMPLATES: dict[Hashable, tuple[keras.Model, list | None]] = {}


def _run_traced(fn: Callable, model: keras.Model, weights: tuple[list, list] | None, x: np.ndarray,
                y: np.ndarray) -> Any:
    """``fn(trainable values, non-trainable values, x, y)`` of a function traced for ``model``'s architecture, fed
    ``weights`` (:func:`redrawn`'s) or, when None, ``model``'s own, run op by op as eager code (:func:`_as_eager`)."""
    import tensorflow as tf

    if weights is None:
        weights = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
    with _as_eager():
        return fn([tf.convert_to_tensor(w) for w in weights[0]], [tf.convert_to_tensor(w) for w in weights[1]],
                  tf.convert_to_tensor(x), tf.convert_to_tensor(y))


def _remember(cache: dict, key: Hashable, value: Any, size: int) -> Any:
    """``cache[key] = value`` in a cache of at most ``size`` entries (the oldest leaves first); returns ``value``."""
    if len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def _initial_values(model: keras.Model, inits: list, seed: int) -> tuple[list, list]:
    """The weights of ``model``'s net of seed ``seed``: each ``(initializer, seed offset)`` of ``inits`` called
    (reseeded at ``seed + offset`` when it has a seed), as ``add_weight`` calls it; (trainable, non-trainable)."""
    variables = model.trainable_variables + model.non_trainable_variables
    values = [(init if off is None else reseeded(init, seed + off))(tuple(v.shape), dtype=v.dtype)
              for v, (init, off) in zip(variables, inits)]
    return values[:len(model.trainable_variables)], values[len(model.trainable_variables):]


def _template(build: Callable[[int], keras.Model]) -> tuple[keras.Model, list | None]:
    """``build(0)`` and per variable (trainable, then non-trainable) its initializer and seed offset; None in place
    of the list unless ``build(1)`` has the architecture of ``build(0)`` and the weights redrawn from them bit for
    bit (a random initializer without a seed, a variable of no known initializer: no redrawing) or the net has no
    traced gradient (:func:`_architecture`)."""
    model = build(_TEMPLATE_SEED)
    key = _architecture(model) if keras.backend.backend() == "tensorflow" else None
    if key is None:
        return model, None
    owner = {id(v): op for op in model.operations for v in op.weights}
    inits = []
    for v in model.trainable_variables + model.non_trainable_variables:
        init = getattr(owner.get(id(v)), f"{v.name}_initializer", None)
        cfg = init.get_config() if isinstance(init, keras.initializers.Initializer) else {"seed": None}
        if "seed" in cfg and type(cfg["seed"]) is not int:
            return model, None
        inits.append((init, cfg["seed"] - _TEMPLATE_SEED if "seed" in cfg else None))
    other = build(_TEMPLATE_SEED + 1)
    built = [keras.ops.convert_to_numpy(v.value) for v in other.trainable_variables + other.non_trainable_variables]
    drawn = [keras.ops.convert_to_numpy(w) for w in sum(_initial_values(model, inits, _TEMPLATE_SEED + 1), [])]
    same = _architecture(other) == key and len(built) == len(drawn) and all(
        a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(built, drawn))
    if same:
        _KEYS[model] = key
    return model, inits if same else None


def redrawn(build: Callable[[int], keras.Model], seed: int,
            key: Hashable) -> tuple[keras.Model, tuple[list, list] | None]:
    """The net ``build(seed)`` without building it: ``(template, weights)``, the net ``build(0)`` and the initial
    weights of seed ``seed`` drawn from its initializers reseeded (a builder that seeds every initializer with
    its seed plus a fixed offset per layer; checked once per ``key`` on ``build(1)``), as
    :func:`kernel_gradient_norms` and :func:`gradkit.stacking.stack_models` take them; ``(build(seed), None)``
    where that does not hold. ``key`` names the builder and its arguments (one template per key)."""
    model, inits = _TEMPLATES[key] if key in _TEMPLATES else _remember(_TEMPLATES, key, _template(build), 8)
    if inits is None:
        return build(seed), None
    return model, _initial_values(model, inits, seed)


def seeded_net(builder: str, seed: int, **kwargs) -> tuple[keras.Model, tuple[list, list] | None]:
    """:func:`redrawn` for ``gradkit.models.<builder>(**kwargs, seed=seed)``; ``kwargs``: hashable values."""
    return redrawn(lambda s: getattr(models, builder)(**kwargs, seed=s), seed,
                   ("gradkit.models", builder, tuple(sorted(kwargs.items()))))


@lru_cache(maxsize=8)
def _norms(seed: int, depth: int, width: int, batch: int, test_fraction: float) -> tuple[tuple[float, ...], ...]:
    X, y = data.digits()
    X_train, _, y_train, _ = data.train_test_split(X, y, test_fraction=test_fraction, rng=seed)
    kw = dict(activation="relu", initializer="glorot_uniform", input_dim=int(X.shape[1]), output_dim=10,
              output_activation="softmax", width=width)
    blocks = depth // 2
    nets = (seeded_net("build_mlp", seed, depth=depth, **kw),
            seeded_net("build_mlp", seed, depth=depth, batch_norm=True, **kw),
            seeded_net("build_resnet", seed, blocks=blocks, block="dense_relu", stem_layers=1, head_layers=0, **kw),
            seeded_net("build_resnet", seed, blocks=blocks, block="dense_bn_relu", stem_layers=1,
                       stem_batch_norm=True, head_layers=0, **kw))
    return tuple(tuple(kernel_gradient_norms(m, X_train[:batch], y_train[:batch], "sparse_categorical_crossentropy",
                                             weights).values()) for m, weights in nets)


def grid_norms(tol: Mapping[str, Any], seed: int) -> dict[str, np.ndarray]:
    """``{name: per-kernel gradient norms, input side first}`` of the four nets of :data:`NETS` at
    initialisation (training-mode batch normalisation), data split and weights seeded ``seed``; memoized."""
    rows = _norms(int(seed), tol["grid_depth"], tol["grid_width"], tol["grid_batch"], tol["grid_test_fraction"])
    return {name: np.asarray(row) for name, row in zip(NETS, rows)}


def grid_summary(tol: Mapping[str, Any], seed: int) -> dict[str, tuple[float, float]]:
    """``{name: (log10 first-kernel norm, log10 spread)}`` averaged over ``grid_seeds`` grids, grid ``k``
    seeded ``derive_seed(seed, k)`` (well apart: a net seeded s uses s + i for its layer i)."""
    grids = [grid_norms(tol, derive_seed(seed, k)) for k in range(tol["grid_seeds"])]
    return {name: (float(np.mean([math.log10(g[name][0]) for g in grids])),
                   float(np.mean([math.log10(g[name].max() / g[name].min()) for g in grids])))
            for name in NETS}


def grid_margin(components: Mapping[str, Any], tol: Mapping[str, Any], seed: int) -> float:
    """How clearly the grids at ``seed`` support the two names of ``components``, in log10 units.

    ``components["vanishing_net"]`` must be the net whose first kernel's gradient norm is the smallest,
    ``components["exploding_net"]`` the one whose spread (largest / smallest kernel norm) is the largest,
    both as averages of log10 over the ``grid_seeds`` grids of :func:`grid_summary`. Returns the smaller of
    the two gaps to the nearest other net: positive when both names are right, negative when one is wrong,
    -inf for a name that is not one of :data:`NETS`.
    """
    summary = grid_summary(tol, seed)
    vanishing, exploding = components["vanishing_net"], components["exploding_net"]
    if vanishing not in summary or exploding not in summary:
        return -math.inf
    return min(min(summary[k][0] - summary[vanishing][0] for k in NETS if k != vanishing),
               min(summary[exploding][1] - summary[k][1] for k in NETS if k != exploding))


def reference(tol: Mapping[str, Any]) -> dict[str, Any]:  # noqa: ARG001 - the same for every section
    """The names the grid supports (seed 001's finding, and this course's measurements at seeds 0-2)."""
    return {"vanishing_net": "plain", "exploding_net": "BN only"}
