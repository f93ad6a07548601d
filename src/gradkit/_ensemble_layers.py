"""Building blocks of :mod:`gradkit.ensemble`: the member-axis Dense layer,
its per-member initializer, the decoupled loss, the per-member loss metric,
and the training plumbing (seeds, optimizer checks, input shapes); the per-member
shuffled epochs are in :mod:`gradkit._epochs`.

Every tensor carries the member axis LAST: activations ``(batch, features, M)``,
kernels ``(in, units, M)``, biases ``(units, M)``. Everything is written with
``keras.ops`` and runs on the TensorFlow, JAX and PyTorch backends.
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from .activations import activation_name, get_activation
from .initializers import get_initializer

__all__ = ["EnsembleDense", "MemberwiseInitializer", "EnsembleMSE", "MemberMSE", "derive_seed",
           "int_seed", "ensemble_layers", "check_optimizer", "resolve_jit", "member_arrays"]

#: Inputs narrower than this are contracted by broadcast-multiply-sum (fuses
#: into one elementwise kernel, far faster for width-2 nets); wider ones by einsum.
_BROADCAST_MAX_IN = 8

_COUPLING_OPTIMIZERS = ("Lamb", "Adafactor", "Muon")
#: members * steps * epochs from which "auto" uses XLA on TensorFlow: below it, XLA's
#: compile time exceeds what its faster steps save. Measured on 2 CPU cores, ReLU, a new model
#: each: 58,750 (250 x 47 x 5) 1.4 s graph vs 2.0 s XLA; 117,500 (a3's hidden study) 2.1-2.4 s
#: either way, and 1.75x faster with XLA once compiled (course/a3_dying_relu/NOTES.md).
_XLA_MIN_WORK = 100_000

_VS = keras.initializers.VarianceScaling
#: Initializers that draw i.i.d. entries whatever the shape: one joint draw is exact.
_IID = (keras.initializers.RandomNormal, keras.initializers.RandomUniform,
        keras.initializers.TruncatedNormal, keras.initializers.Zeros,
        keras.initializers.Ones, keras.initializers.Constant)


def derive_seed(seed: int, *keys: int) -> int:
    """A 31-bit int seed for Keras, derived from ``seed`` and stream ``keys``."""
    state = np.random.SeedSequence([int(seed), *(int(k) for k in keys)]).generate_state(1)
    return int(state[0] >> 1)


def _own_call(init: Any, base: type) -> bool:
    return isinstance(init, base) and type(init).__call__ is base.__call__


class MemberwiseInitializer(keras.initializers.Initializer):
    """Initialize a ``(*member_shape, M)`` weight as M independent draws of
    ``member_shape``, so fans are those of ONE member's ``(in, out)`` kernel.

    Keras' own initializers called with a 3-D shape treat it as a convolution
    kernel and use ``fan_in * M``. Here a ``VarianceScaling`` (He, Glorot,
    LeCun, ...) is redrawn with ``input_axes=[0], output_axes=[1]``; i.i.d.
    initializers (normal, uniform, zeros, ...) are drawn jointly; anything else
    (``Orthogonal``, a user class or callable) is called once per member with
    the member shape and seed ``derive_seed(seed, m)``.
    """

    def __init__(self, spec: Any, members: int, seed: int):
        self.spec, self.members, self.seed = spec, int(members), int(seed)

    def _member(self, m: int | None) -> Any:
        return get_initializer(self.spec, seed=self.seed if m is None else derive_seed(self.seed, m))

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        if shape[-1] != self.members:
            raise ValueError(f"last axis of {shape} must be the member axis ({self.members})")
        member_shape = shape[:-1]
        init = self._member(None)
        if _own_call(init, _VS) and len(member_shape) == 2:
            vs = _VS(scale=init.scale, mode=init.mode, distribution=init.distribution,
                     seed=self.seed, input_axes=[0], output_axes=[1])
            return vs(shape, dtype=dtype)
        if any(_own_call(init, cls) for cls in _IID):
            return init(shape, dtype=dtype)
        parts = [ops.convert_to_tensor(self._member(m)(member_shape, dtype=dtype), dtype=dtype)
                 for m in range(self.members)]
        return ops.stack(parts, axis=-1)

    def get_config(self):
        return {"spec": self.spec, "members": self.members, "seed": self.seed}


class EnsembleDense(keras.layers.Layer):
    """Dense layer for M independent members: ``(batch, in, M) -> (batch, units, M)``.

    ``y[b, u, m] = activation(sum_i x[b, i, m] * kernel[i, u, m] + bias[u, m])``.

    Parameters
    ----------
    units : int
        Output features per member.
    members : int
        Ensemble size M (the last axis of input, kernel, bias and output).
    activation : str or callable, optional
        A :data:`gradkit.activations.ACTIVATIONS` name or a callable; None is linear.
    kernel_initializer, bias_initializer : str, class, instance or callable
        Anything :func:`gradkit.initializers.get_initializer` accepts; applied
        per member with fans of the ``(in, units)`` member kernel.
    seed : int
        Seed of this layer's kernel draw (the bias uses ``derive_seed(seed, 1)``).
    use_bias : bool
        False: no bias (``y = activation(x @ kernel)``).
    """

    def __init__(self, units: int, members: int, activation: Any = None,
                 kernel_initializer: Any = "he_normal", bias_initializer: Any = "zeros",
                 seed: int = 0, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.members, self.seed = int(units), int(members), int(seed)
        self.use_bias = bool(use_bias)
        self.activation = activation
        self.activation_fn = get_activation(activation) if activation is not None else None
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def _initializers(self) -> tuple[MemberwiseInitializer, MemberwiseInitializer]:
        return (MemberwiseInitializer(self.kernel_initializer, self.members, self.seed),
                MemberwiseInitializer(self.bias_initializer, self.members, derive_seed(self.seed, 1)))

    def build(self, input_shape):
        in_dim, members = input_shape[-2], input_shape[-1]
        if members != self.members:
            raise ValueError(f"{self.name}: input has {members} members on the last axis, "
                             f"layer was made for {self.members}")
        kernel_init, bias_init = self._initializers()
        self.kernel = self.add_weight(name="kernel", shape=(in_dim, self.units, self.members),
                                      initializer=kernel_init)
        self.bias = self.add_weight(name="bias", shape=(self.units, self.members),
                                    initializer=bias_init) if self.use_bias else None

    def reseed(self, seed: int) -> None:
        """Redraw the built layer's weights as a layer built with ``seed`` draws them (the same
        initializers called the same way: equal values), e.g. to train a traced model again."""
        self.seed = int(seed)
        for var, init in zip((self.kernel, self.bias), self._initializers()):
            if var is not None:
                var.assign(init(tuple(var.shape), dtype=var.dtype))

    def call(self, x):
        if self.kernel.shape[0] <= _BROADCAST_MAX_IN:
            y = ops.sum(ops.expand_dims(x, 2) * self.kernel, axis=1)  # (b,in,1,M)*(in,u,M)
        else:
            y = ops.einsum("bim,ium->bum", x, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return y if self.activation_fn is None else self.activation_fn(y)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units, self.members)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, members=self.members, seed=self.seed, use_bias=self.use_bias,
                   activation=None if self.activation is None else activation_name(self.activation),
                   kernel_initializer=self.kernel_initializer if isinstance(self.kernel_initializer, str)
                   else keras.initializers.serialize(self.kernel_initializer),
                   bias_initializer=self.bias_initializer if isinstance(self.bias_initializer, str)
                   else keras.initializers.serialize(self.bias_initializer))
        return cfg


class EnsembleMSE(keras.losses.Loss):
    """Sum over members of each member's mean squared error.

    ``call`` returns per-sample ``sum_m mean_o (y_pred - y_true)[b, o, m]**2``;
    Keras then averages over the batch (weighted by ``sample_weight``, whose
    zeros mark padding rows), so the total is
    ``sum_m mean_{b,o} (...)**2``: member m's gradient is exactly that of its
    own MSE (a mean over members would scale every gradient by 1/M, which Adam's
    epsilon does not ignore), and a non-finite member leaves the others' gradients
    untouched. No squeezing or reshaping of the member axis happens.
    """

    def __init__(self, name: str = "ensemble_mse", reduction: str = "mean_with_sample_weight", **kwargs):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        return ops.sum(ops.mean(ops.square(y_pred - y_true), axis=1), axis=-1)


class MemberMSE(keras.metrics.Metric):
    """Running per-member MSE over an epoch (rows weighted by ``sample_weight``,
    as Keras' own ``loss`` log weights batches by size); ``result()`` has shape ``(M,)``.
    Register it in ``compile(weighted_metrics=...)``."""

    def __init__(self, members: int, name: str = "member_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.members = int(members)
        self.total = self.add_variable(shape=(self.members,), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, y_pred.dtype)
        per_row = ops.mean(ops.square(y_pred - y_true), axis=1)  # (batch, M)
        if sample_weight is None:
            sample_weight = ops.ones(ops.shape(per_row)[:1], dtype=per_row.dtype)
        w = ops.cast(ops.reshape(sample_weight, (-1, 1)), per_row.dtype)
        # where(): a padding row of a diverged member (inf * 0) must not turn its sum to NaN
        total = ops.sum(ops.where(w > 0, per_row * w, ops.zeros_like(per_row)), axis=0)
        self.total.assign_add(ops.cast(total, self.dtype))
        self.count.assign_add(ops.cast(ops.sum(w), self.dtype))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(ops.zeros((self.members,), dtype=self.dtype))
        self.count.assign(ops.zeros((), dtype=self.dtype))

    def get_config(self):
        return {**super().get_config(), "members": self.members}


# ------------------------------------------------------------ training plumbing
def int_seed(seed: int | np.random.Generator) -> int:
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**31))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be an int >= 0 or a numpy Generator, got {seed!r}")
    return int(seed)


def ensemble_layers(model: keras.Model) -> list[EnsembleDense]:
    layers = [lay for lay in model.layers if isinstance(lay, EnsembleDense)]
    if not layers:
        raise ValueError("model has no EnsembleDense layers; build it with build_ensemble_mlp")
    return layers


def check_optimizer(opt: keras.optimizers.Optimizer) -> None:
    inner = getattr(opt, "inner_optimizer", opt)
    for o in {id(opt): opt, id(inner): inner}.values():
        for attr in ("clipnorm", "global_clipnorm"):
            if getattr(o, attr, None) is not None:
                raise ValueError(
                    f"optimizer has {attr}={getattr(o, attr)}: norm clipping is computed over the "
                    "whole kernel variable, which holds ALL members, so one member's gradient would "
                    "rescale the others'. Use clipvalue (elementwise) or no clipping.")
        if type(o).__name__ in _COUPLING_OPTIMIZERS:
            raise ValueError(f"{type(o).__name__} normalizes or factorizes per variable and would "
                             "couple ensemble members; use an elementwise optimizer (Adam, SGD, RMSprop, ...)")


def resolve_jit(jit_compile: bool | str, work: int) -> bool:
    if jit_compile != "auto":
        return bool(jit_compile)
    backend = keras.backend.backend()
    return backend == "jax" or (backend == "tensorflow" and work >= _XLA_MIN_WORK)


def member_arrays(a: np.ndarray, name: str, members: int, dim: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:  # same data for every member
        a = np.broadcast_to(a[..., None], a.shape + (members,))
    if a.ndim != 3 or a.shape[1:] != (dim, members):
        raise ValueError(f"{name} must have shape (n, {dim}, {members}), got {a.shape}")
    return a
