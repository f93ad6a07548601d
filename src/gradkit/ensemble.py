"""Train M independent small MLPs as ONE Keras model with a member axis.

Used for the dying-ReLU study of seed 002 (Lu et al., "Dying ReLU and
Initialization: Theory and Numerical Examples", 2019) and for repeated-seed
experiments: 1000 nets of depth 10 and width 2 train in seconds instead of an hour.

Shapes (M = number of members, always the LAST axis)
------------------------------------------------------
inputs ``x``        : ``(n, input_dim, M)``  -- every member has its own data
targets ``y``       : ``(n, output_dim, M)``
kernel of a layer   : ``(in, units, M)``;  bias ``(units, M)``
model output        : ``(batch, output_dim, M)``
loss history        : ``(epochs, M)``
grid outputs        : ``(grid_points, M)`` (or ``(grid_points, output_dim, M)``)

Public API
----------
EnsembleDense(units, members, activation=None, kernel_initializer="he_normal", bias_initializer="zeros", seed=0)
build_ensemble_mlp(members, depth, width, *, activation="relu", initializer="he_normal",
                   input_dim=1, output_dim=1, output_activation=None, seed=0) -> keras.Model
member_model(ensemble, m) -> keras.Sequential  (ordinary Dense MLP holding member m's weights)
reseed_ensemble(model, seed) -> None  (redraw the weights build_ensemble_mlp(..., seed=seed) draws)
fit_ensemble(model, x, y, *, epochs, batch_size, learning_rate=1e-3, optimizer="adam",
             seed=0, progress=True, jit_compile="auto") -> np.ndarray (epochs, M)
collapse_rate(activation="relu", *, detector, members=1000, depth=10, width=2, n_train=3000, batch_size=64,
              epochs=10, target="abs", initializer="he_normal", learning_rate=1e-3, confidence=0.95,
              grid_points=DEFAULT_GRID_POINTS, seed=0, progress=True) -> CollapseResult
summarize_collapse(outputs, *, detector, losses=None, confidence=0.95, activation="") -> CollapseResult
reuse_models(limit=4) -> context manager  (collapse_rate trains studies of one layout on one traced model)

The layers and loss are defined in :mod:`gradkit._ensemble_layers`, :func:`fit_ensemble` and
:func:`reuse_models` in :mod:`gradkit._ensemble_fit`; all of them are imported from here.

The detector (which members compute a constant function) is always the caller's: it is a stub of
assignment a3_dying_relu, whose reference lives with that assignment's grader, not here.

Independence of members
-----------------------
* Loss = SUM over members of each member's mean squared error (:class:`EnsembleMSE`),
  so member m's gradient is exactly its own; Adam/RMSprop/SGD act elementwise, so
  its trajectory equals that of a standalone Keras model given the same weights and
  batches, to float32 rounding (max |dw| ~ 6e-8 after 3 epochs, TF and JAX).
* Optimizers that treat a variable as a whole would mix members through the shared
  kernel variable; ``clipnorm``/``global_clipnorm`` and Lamb/Adafactor/Muon are
  rejected with a ``ValueError`` (``clipvalue`` is elementwise and allowed).
* A member whose weights become inf/NaN does not affect the others.

Seeds
-----
Randomness enters only through ``seed`` arguments (an int >= 0, or a
``numpy.random.Generator`` from which one int is drawn). Member m's training data
and its shuffle order come from ``np.random.default_rng([seed, stream, m])`` and do not
depend on M. Kernels use Keras initializers with derived int seeds (one joint,
fan-corrected draw for He/Glorot/LeCun, see :class:`MemberwiseInitializer`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import keras
import numpy as np
from keras import ops

from ._ensemble_fit import fit_ensemble, fit_reused, reuse_key, reuse_models
from ._ensemble_layers import (
    EnsembleDense,
    EnsembleMSE,
    MemberMSE,
    MemberwiseInitializer,
    derive_seed,
    ensemble_layers,
    int_seed,
    resolve_jit,
)
from .activations import activation_name
from .stats import wilson_interval

__all__ = ["EnsembleDense", "MemberwiseInitializer", "EnsembleMSE", "MemberMSE",
           "build_ensemble_mlp", "reseed_ensemble", "member_model", "fit_ensemble",
           "collapse_rate", "reuse_models", "summarize_collapse", "CollapseResult", "TARGETS", "INTERVAL",
           "DEFAULT_RTOL", "DEFAULT_GRID_POINTS"]

DEFAULT_RTOL = 1e-3  #: the definition of collapse (course/a3_dying_relu/NOTES.md)
DEFAULT_GRID_POINTS = 256  #: evaluation grid of the collapse test (same NOTES.md)
INTERVAL = (-math.sqrt(7.0), math.sqrt(7.0))  #: input interval of Lu et al.'s 1-D experiments

#: Lu et al.'s 1-D targets (same definitions as gradkit.data.lu_target).
TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs,
    "xsin5x": lambda x: x * np.sin(5 * x),
    "step_sin": lambda x: (x > 0).astype(np.asarray(x).dtype) + 0.2 * np.sin(5 * x),
}
_STREAM_DATA, _STREAM_INIT = 1, 3  # streams of default_rng / derive_seed; 2 (shuffle) is _ensemble_fit's


def _target_fn(target: str | Callable) -> Callable:
    if callable(target):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise KeyError(f"unknown target {target!r}; known: {', '.join(sorted(TARGETS))}") from None


def build_ensemble_mlp(members: int, depth: int, width: int, *, activation: Any = "relu",
                       initializer: Any = "he_normal", input_dim: int = 1, output_dim: int = 1,
                       output_activation: Any = None, seed: int | np.random.Generator = 0) -> keras.Model:
    """M independent MLPs (``depth`` hidden layers of ``width`` units) as one model.

    Returns a ``keras.Model`` mapping ``(batch, input_dim, M)`` to
    ``(batch, output_dim, M)``. ``activation`` is a registry name or callable,
    ``initializer`` anything :func:`gradkit.initializers.get_initializer`
    accepts (kernels; biases start at zero). Layer l's kernels are seeded with
    ``derive_seed(seed, 3, l)``.
    """
    if members < 1 or depth < 0 or width < 1:
        raise ValueError(f"need members >= 1, depth >= 0, width >= 1; got {members}, {depth}, {width}")
    seed = int_seed(seed)
    inp = keras.Input(shape=(input_dim, members), name="x")
    h = inp
    sizes = [width] * depth + [output_dim]
    for layer, units in enumerate(sizes):
        last = layer == depth
        h = EnsembleDense(units, members, activation=output_activation if last else activation,
                          kernel_initializer=initializer,
                          seed=derive_seed(seed, _STREAM_INIT, layer),
                          name="output" if last else f"hidden_{layer + 1}")(h)
    return keras.Model(inp, h, name=f"ensemble_mlp_{members}x{depth}x{width}")


def reseed_ensemble(model: keras.Model, seed: int | np.random.Generator) -> None:
    """Give a :func:`build_ensemble_mlp` model the initial weights that ``build_ensemble_mlp(...,
    seed=seed)`` draws (layer l: :meth:`EnsembleDense.reseed` with ``derive_seed(seed, 3, l)``)."""
    seed = int_seed(seed)
    for layer, lay in enumerate(ensemble_layers(model)):
        lay.reseed(derive_seed(seed, _STREAM_INIT, layer))


def member_model(ensemble: keras.Model, m: int) -> keras.Sequential:
    """An ordinary ``keras.Sequential`` of ``Dense`` layers holding member m's
    current weights: input ``(batch, input_dim)``, output ``(batch, output_dim)``."""
    layers = ensemble_layers(ensemble)
    members = layers[0].members
    if not -members <= m < members:
        raise IndexError(f"member {m} out of range for {members} members")
    in_dim = int(layers[0].kernel.shape[0])
    net = keras.Sequential([keras.Input(shape=(in_dim,))] + [
        keras.layers.Dense(lay.units, activation=lay.activation_fn, name=lay.name,
                           kernel_initializer="zeros") for lay in layers],
        name=f"member_{m % members}")
    for dense, lay in zip(net.layers, layers):
        kernel = ops.convert_to_numpy(lay.kernel)[..., m]
        bias = ops.convert_to_numpy(lay.bias)[..., m]
        dense.set_weights([kernel, bias])
    return net


@dataclasses.dataclass(frozen=True, eq=False)
class CollapseResult:
    """Outcome of :func:`collapse_rate`.

    ``collapsed`` and ``diverged`` are bool arrays ``(M,)`` and never both True.
    A diverged member (non-finite output on the grid or non-finite final loss)
    is neither a constant function nor a fit: it is EXCLUDED from ``n`` and
    ``rate`` and counted in ``diverged``. ``rate = collapsed.sum() / n`` with
    ``n = M - diverged.sum()``; ``ci`` is its Wilson interval at ``confidence``
    (``rate`` NaN and ``ci = (0, 1)`` when ``n == 0``).
    """

    rate: float
    collapsed: np.ndarray
    diverged: np.ndarray
    ci: tuple[float, float]
    n: int
    confidence: float
    activation: str
    losses: np.ndarray | None = dataclasses.field(repr=False)  # (epochs, M)
    outputs: np.ndarray = dataclasses.field(repr=False)  # (grid, M)

    @property
    def count(self) -> int:
        return int(self.collapsed.sum())

    def __str__(self) -> str:
        s = (f"collapse rate {self.rate:.3f} ({self.count}/{self.n}), "
             f"{100 * self.confidence:g}% Wilson CI [{self.ci[0]:.3f}, {self.ci[1]:.3f}]")
        nd = int(self.diverged.sum())
        return s + (f"; {nd} diverged member(s) excluded" if nd else "")


def collapse_rate(activation: Any = "relu", *, detector: Callable[[np.ndarray], np.ndarray], members: int = 1000,
                  depth: int = 10, width: int = 2, n_train: int = 3000, batch_size: int = 64, epochs: int = 10,
                  target: str | Callable = "abs", initializer: Any = "he_normal",
                  learning_rate: float = 1e-3, confidence: float = 0.95,
                  grid_points: int = DEFAULT_GRID_POINTS, seed: int | np.random.Generator = 0,
                  progress: bool = True) -> CollapseResult:
    """Fraction of ``members`` independently trained nets that collapse to a constant.

    The defaults are seed 002's experiment (course/a3_dying_relu/NOTES.md): He-normal
    kernels, zero biases, MSE, Adam, each member its own ``n_train`` points
    ``x ~ U[-sqrt 7, sqrt 7]`` (from ``default_rng([seed, 1, m])``) and ``y = target(x)``.

    ``target`` is a :data:`TARGETS` name or an elementwise numpy function of x.
    ``detector`` decides which members collapsed: called as ``detector(outputs)``
    with the ``(grid_points, M)`` float32 outputs on ``linspace(*INTERVAL,
    grid_points)``, it returns a bool array ``(M,)`` (True = collapsed). Diverged
    members (non-finite) are excluded from the rate whatever the detector says;
    see :class:`CollapseResult`.
    """
    seed = int_seed(seed)
    f = _target_fn(target)
    xs = np.empty((n_train, 1, members), dtype=np.float32)
    for m in range(members):
        xs[:, 0, m] = np.random.default_rng([seed, _STREAM_DATA, m]).uniform(*INTERVAL, n_train)
    ys = np.asarray(f(xs), dtype=np.float32)
    steps = math.ceil(n_train / batch_size)
    key = reuse_key(members, depth, width, activation, initializer, learning_rate, batch_size, steps,
                    resolve_jit("auto", members * steps * epochs))

    def build() -> keras.Model:
        return build_ensemble_mlp(members, depth, width, activation=activation, initializer=initializer, seed=seed)
    if key is None or epochs == 0:
        model = build()
        losses = fit_ensemble(model, xs, ys, epochs=epochs, batch_size=batch_size,
                              learning_rate=learning_rate, seed=seed, progress=progress)
    else:  # inside reuse_models: a kept compiled model of this layout, redrawn for this seed
        model, losses = fit_reused(key, build, lambda kept: reseed_ensemble(kept, seed), xs, ys, epochs=epochs,
                                   seed=seed, progress=progress)
    grid = np.linspace(*INTERVAL, grid_points, dtype=np.float32)
    xg = np.broadcast_to(grid[:, None, None], (grid_points, 1, members))
    outputs = ops.convert_to_numpy(model(xg, training=False))[:, 0, :]  # no predict() compile
    return summarize_collapse(outputs, losses=losses, detector=detector, confidence=confidence,
                              activation=activation_name(activation))


def summarize_collapse(outputs, *, detector: Callable[[np.ndarray], np.ndarray], losses=None,
                       confidence: float = 0.95, activation: str = "") -> CollapseResult:
    """:class:`CollapseResult` from grid outputs ``(grid, M)`` and, optionally, the
    loss history ``(epochs, M)`` (a non-finite last entry marks a member diverged);
    ``detector(outputs) -> bool (M,)`` says which members collapsed."""
    if not callable(detector):
        raise TypeError(f"detector must be a function outputs -> bool array (members,), got {type(detector).__name__}")
    outputs = np.asarray(outputs)
    members = outputs.shape[-1]
    collapsed = np.asarray(detector(outputs), dtype=bool)
    if collapsed.shape != (members,):
        raise ValueError(f"detector must return a bool array of shape ({members},), got {collapsed.shape}")
    diverged = ~np.isfinite(outputs.reshape(-1, members)).all(axis=0)
    if losses is not None:
        losses = np.asarray(losses)
        diverged |= ~np.isfinite(losses[-1]) if len(losses) else False
    collapsed = collapsed & ~diverged
    n = members - int(diverged.sum())
    rate = collapsed.sum() / n if n else float("nan")
    ci = wilson_interval(int(collapsed.sum()), n, confidence) if n else (0.0, 1.0)
    return CollapseResult(rate=float(rate), collapsed=collapsed, diverged=diverged, ci=ci, n=n,
                          confidence=confidence, activation=activation,
                          losses=losses, outputs=outputs)
