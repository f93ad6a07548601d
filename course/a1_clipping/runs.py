"""a1_clipping's trainings, many runs side by side: what its two training statistics run.

* :func:`fit_lines`: seed 004's ``Dense(1)`` line (:func:`gradkit.data.linear_explode`), one per run,
  trained as ONE Keras model holding each run's kernel and bias as variables of their own, with one
  optimizer and the loss the sum of the runs' own mean squared errors. Where the optimizer acts on each
  variable by itself (:func:`per_variable`: clipnorm, clipvalue, Adam's moments), each run takes the
  steps it takes alone in its own model: the same floats (measured against the per-run ``fit``,
  tests/test_batched_a1.py). Global-norm clipping couples a model's variables: such an optimizer gets a
  model per run.
* :class:`Loops`: the training-loop test's runs, Keras' ``SGD(global_clipnorm)`` next to plain SGD on
  the student's clip, each step of all runs in one traced function (the student's clip is called run by
  run, between two calls, with concrete tensors). The old loop ran eagerly; Grappler's rewrites change
  the last bits of a graph (MatMul + Add fusions, the global norm's sum), so the traced steps run with
  Grappler off (:func:`plain_graphs`), the ops as eager runs them: the same floats (measured). On another
  Keras backend (JAX, tests marked ``backends``) the steps run eagerly, through
  :func:`gradkit._autodiff.loss_and_grads`.

Building and tracing take seconds per shape (q1's 100 runs: ~25 s under load), so the last model built
for each shape and configuration is kept (:func:`fit_lines`' cache, :meth:`Loops.get`) and its variables
and its optimizers' state are set afresh on each use: a calibration traces once per shape.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np
from keras import ops

from gradkit._autodiff import loss_and_grads, mean_loss
from gradkit.data import linear_explode

__all__ = ["Loops", "fit_lines", "group_key", "per_variable", "plain_graphs"]

#: Keras optimizers whose update of a variable reads that variable's gradient and state only (besides the
#: shared step count), so runs in one model train as alone; checked one by one in tests/test_batched_a1.py
_PER_VARIABLE = ("SGD", "Adam", "AdamW", "Adamax", "Adagrad", "Adadelta", "RMSprop", "Nadam", "Ftrl", "Lion")
_CACHE: dict[str, Any] = {}


def per_variable(optimizer: Any) -> bool:
    """True when runs may share ``optimizer`` in one model: a Keras optimizer of :data:`_PER_VARIABLE`
    (the class itself, no subclass) without ``global_clipnorm``."""
    return (any(type(optimizer) is getattr(keras.optimizers, n) for n in _PER_VARIABLE)
            and getattr(optimizer, "global_clipnorm", None) is None)


def group_key(optimizer: Any) -> str:
    """The runs whose optimizers have equal keys train in one model; unique (``id``) where they may not."""
    if not per_variable(optimizer):
        return f"alone {id(optimizer)}"
    config = keras.optimizers.serialize(optimizer)
    config["config"] = {k: v for k, v in config["config"].items() if k != "name"}  # sgd, sgd_1, ...: no number
    return json.dumps(config, sort_keys=True, default=repr)


def _summed_mse(y_true, y_pred):
    """The sum over runs (columns) of each run's mean squared error. Its gradient with respect to each
    prediction is the one Keras' ``"mse"`` gives the run's model alone, element by element: the same
    elementwise operations on the same numbers (the reductions, whose order may differ, feed only the
    reported loss)."""
    return ops.sum(ops.mean(ops.square(y_true - y_pred), axis=0))


def _line_model(seeds: Sequence[int], optimizer: Any, steps: int) -> keras.Model:
    """``len(seeds)`` lines: input ``(batch, runs)``, column ``r`` through run ``r``'s own ``Dense(1)``."""
    inputs = keras.Input((len(seeds),))
    columns = ops.split(inputs, len(seeds), axis=1) if len(seeds) > 1 else [inputs]
    outs = [keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(s))(column)
            for column, s in zip(columns, seeds)]
    model = keras.Model(inputs, keras.layers.Concatenate()(outs) if len(outs) > 1 else outs[0])
    model.compile(optimizer=optimizer, loss=_summed_mse, steps_per_execution=steps)
    return model


def fit_lines(optimizer: Any, epochs: int, batch_size: int, seeds: Sequence[int]) -> list[tuple[float, float]]:
    """Final ``(w, b)`` of seed 004's line trained with ``optimizer`` once per seed of ``seeds``, in one model.

    Run ``r`` trains seed 004's ``Dense(1)`` on ``y = 5 + 10 x`` (x = 0..99) as the notebook's ``train_line``
    does, with seed ``seeds[r]``: kernel ``GlorotUniform(seeds[r])``, zero bias, MSE, batches of
    ``batch_size`` in the order of ``default_rng(seeds[r])`` (one permutation per epoch), all ``epochs`` as
    one stream; every step of the stream in one execution (the same floats as a ``Sequential`` per run
    with an execution per epoch, measured). ``optimizer`` (bound to the model; a model kept from an
    earlier call has its own equal copy) must be :func:`per_variable` unless there is one seed.

    Returns
    -------
    list of (float, float), length ``len(seeds)``
        Slope and intercept per run (NaN/inf where the run exploded).
    """
    x, y = linear_explode()
    n, runs = len(x), len(seeds)
    if runs > 1 and not per_variable(optimizer):
        raise ValueError(f"{type(optimizer).__name__} couples the variables of a model: one run per model")
    xs, ys = np.empty((n * epochs, runs), x.dtype), np.empty((n * epochs, runs), y.dtype)
    for r, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
        xs[:, r], ys[:, r] = x[order, 0], y[order, 0]
    steps = len(xs) // batch_size
    key = f"{group_key(optimizer)} runs={runs} steps={steps} batch={batch_size}"
    if _CACHE.get("line key") == key:  # the same optimizer and shape: the traced model afresh
        model, state = _CACHE["line model"], _CACHE["line state"]
        for v, value in zip(model.optimizer.variables, state):
            v.assign(value)
        for r, dense in enumerate(_dense_layers(model)):
            dense.kernel.assign(keras.initializers.GlorotUniform(seeds[r])(tuple(dense.kernel.shape), "float32"))
            dense.bias.assign(np.zeros(tuple(dense.bias.shape), "float32"))
    else:
        model = _line_model(seeds, optimizer, steps)
        model.optimizer.build(model.trainable_variables)
        state = [np.array(ops.convert_to_numpy(v)) for v in model.optimizer.variables]
        if per_variable(optimizer):  # a key of another kind names one object: never kept
            _CACHE.update({"line key": key, "line model": model, "line state": state})
    model.fit(xs, ys, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return [(float(ops.convert_to_numpy(d.kernel)[0, 0]), float(ops.convert_to_numpy(d.bias)[0]))
            for d in _dense_layers(model)]


def _dense_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def _tensorflow() -> bool:
    return keras.backend.backend() == "tensorflow"


@contextmanager
def plain_graphs() -> Iterator[None]:
    """Within the block, traced functions run without Grappler's rewrites (the ops as eager runs them);
    nothing to do on a backend other than TensorFlow."""
    if not _tensorflow():
        yield
        return
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


def _grads(model: keras.Model, x, y) -> list:
    """What :func:`gradkit.diagnostics.gradients` computes (mean MSE, every trainable variable), as tensors."""
    if not _tensorflow():
        _, grads = loss_and_grads(model, x, y, mean_loss("mse", model), list(model.trainable_variables))
        return [ops.convert_to_tensor(g) for g in grads]
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = mean_loss("mse", model)(y, model(x, training=False))
    return tape.gradient(loss, list(model.trainable_variables))


class Loops:
    """``runs`` pairs of loop models (Keras' clipped SGD, plain SGD on a given clip) and their traced steps.

    ``build(seed)`` makes one model; ``lr``, ``max_norm``: the two optimizers' settings. Use :meth:`get`.
    """

    def __init__(self, runs: int, build: Callable[[int], keras.Model], lr: float, max_norm: float) -> None:
        self.ref = [build(0) for _ in range(runs)]
        self.stu = [build(0) for _ in range(runs)]
        self.opt_ref = [keras.optimizers.SGD(learning_rate=lr, global_clipnorm=max_norm) for _ in range(runs)]
        self.opt_stu = keras.optimizers.SGD(learning_rate=lr)
        for opt, model in zip(self.opt_ref, self.ref):
            opt.build(model.trainable_variables)
        self._weights = [(list(r.trainable_variables), list(s.trainable_variables)) for r, s in zip(self.ref, self.stu)]
        self.opt_stu.build([v for _, stu in self._weights for v in stu])
        self._state = [(v, np.array(ops.convert_to_numpy(v))) for v in self._optimizer_variables()]
        self._ref_step, self._stu_step = self._ref_step_py, self._stu_step_py
        if _tensorflow():
            import tensorflow as tf

            self._ref_step = tf.function(self._ref_step_py, autograph=False)
            self._stu_step = tf.function(self._stu_step_py, autograph=False)

    @classmethod
    def get(cls, runs: int, build: Callable[[int], keras.Model], key: Any, lr: float, max_norm: float) -> "Loops":
        """The kept instance for ``key`` (the models' shape and settings) and ``runs``, or a new one."""
        full = ("loops", runs, key, lr, max_norm)
        if _CACHE.get("loops key") != full:
            _CACHE.update({"loops key": full, "loops": cls(runs, build, lr, max_norm)})
        return _CACHE["loops"]

    def _optimizer_variables(self) -> list:
        return [v for opt in (*self.opt_ref, self.opt_stu) for v in opt.variables]

    def reset(self, inits: Sequence[Sequence[np.ndarray]]) -> None:
        """Set run ``r``'s two models to the weights ``inits[r]`` and the optimizers to their start."""
        for init, pair in zip(inits, self._weights):
            for variables in pair:
                for v, value in zip(variables, init):
                    v.assign(value)
        for v, value in self._state:
            v.assign(value)

    def _ref_step_py(self, xs, ys) -> list:
        out = []
        for r, (ref, stu, opt) in enumerate(zip(self.ref, self.stu, self.opt_ref)):
            opt.apply_gradients(zip(_grads(ref, xs[r], ys[r]), ref.trainable_variables))
            out.append(_grads(stu, xs[r], ys[r]))
        return out

    def _stu_step_py(self, clipped) -> None:
        self.opt_stu.apply_gradients(zip(clipped, [v for _, stu in self._weights for v in stu]))

    def ref_step(self, xs: Any, ys: Any) -> list[list[Any]]:
        """One Keras-clipped SGD step of every reference model on ``xs[r], ys[r]``; returns the gradients of
        the other models, one list per run (``model.trainable_variables`` order)."""
        with plain_graphs():
            return [list(g) for g in self._ref_step(xs, ys)]

    def stu_step(self, clipped: Sequence[Sequence[Any]]) -> None:
        """One plain SGD step of every student model with its clipped gradients (each run's list, float32,
        of its variables' shapes: the caller checks)."""
        with plain_graphs():
            self._stu_step([t for run in clipped for t in run])

    def weights(self, r: int) -> tuple[list[keras.Variable], list[keras.Variable]]:
        """Run ``r``'s variables: (reference model's, student model's)."""
        return self._weights[r]
