"""a4_resnet's gradients at initialisation, fast: :func:`grid.kernel_gradient_norms` gives the floats of
:func:`gradkit.diagnostics.gradient_norms` bit for bit (one traced gradient per architecture, fed each net's
weights, Grappler off), falls back to the eager gradient for anything it cannot vouch for, and leaves
TensorFlow's optimizer options as they were; calibration's stored grid values come out again (slow)."""
import importlib
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from gradkit import diagnostics, models
from gradkit_tools.calibrate import checks_of, spread_seeds
from gradkit_tools.course import tolerances

ROOT = Path(__file__).resolve().parents[1]
CHECKS = {c.test: c for c in checks_of("a4_resnet")}  # puts course/ on gradkit_grader.course's path
grid = importlib.import_module("gradkit_grader.course.a4_resnet.grid")
reference = importlib.import_module("gradkit_grader.course.a4_resnet.reference")

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the traced path is TensorFlow's")


def _data(n: int, features: int, seed: int, classes: int | None = None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = rng.integers(0, classes, size=n) if classes else rng.integers(0, 2, size=(n, 1)).astype("float32")
    return x, y


def _resnet(seed: int, width: int = 5, activation: str = "tanh"):
    return reference.build_resnet(3, width, 2, 1, activation=activation, initializer="glorot_uniform", seed=seed)


NETS = {  # (build(seed), features, classes or None for a sigmoid output, loss): q2's two nets and a grid net
    "resnet": (_resnet, 2, None, "binary_crossentropy"),
    "plain": (lambda s: models.build_mlp(6, 5, activation="tanh", input_dim=2, seed=s), 2, None,
              "binary_crossentropy"),
    "bn grid net": (lambda s: models.build_resnet(2, 16, block="dense_bn_relu", activation="relu", input_dim=8,
                                                  output_dim=4, output_activation="softmax", stem_layers=1,
                                                  stem_batch_norm=True, head_layers=0, seed=s), 8, 4,
                    "sparse_categorical_crossentropy"),
}


@pytest.mark.parametrize("net", NETS)
def test_traced_norms_equal_the_eager_norms_bit_for_bit(net):
    """Three nets of one architecture (seeds 3, 40, 500): the norms of diagnostics.gradient_norms exactly, the
    second and third through the first one's trace (one entry more in the cache, not three)."""
    build, features, classes, loss = NETS[net]
    x, y = _data(64, features, 0, classes)
    before, keys = len(grid._TRACED), set()
    for seed in (3, 40, 500):
        model = build(seed)
        keys.add(grid._architecture(model))
        eager = diagnostics.gradient_norms(model, x, y, loss, training=True)
        assert grid.kernel_gradient_norms(model, x, y, loss) == eager
    assert len(keys) == 1 and None not in keys
    assert len(grid._TRACED) == min(before + 1, 8)


def test_architecture_tells_nets_apart():
    """One key per architecture: seeds do not matter, width and activation do; a net the key cannot vouch for
    (a custom activation, a layer outside the list, a subclassed model) has none and takes the eager path."""
    assert grid._architecture(_resnet(1)) == grid._architecture(_resnet(2))
    assert grid._architecture(_resnet(1)) != grid._architecture(_resnet(1, width=6))
    assert grid._architecture(_resnet(1)) != grid._architecture(_resnet(1, activation="relu"))
    assert grid._architecture(_resnet(1, activation=lambda t: keras.ops.tanh(t))) is None
    inputs = keras.Input((2,))
    dropout = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dropout(0.5)(inputs)))
    assert grid._architecture(dropout) is None
    assert grid._architecture(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])) is None  # not Functional

    class Twice(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(2.0 * x)

    sub = Twice()
    sub(np.zeros((1, 2), "float32"))
    assert grid._architecture(sub) is None
    x, y = _data(16, 2, 1)
    assert grid.kernel_gradient_norms(sub, x, y, "mse") == diagnostics.gradient_norms(sub, x, y, "mse", training=True)


def test_optimizer_options_restored():
    """Grappler is off only while a traced gradient runs."""
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options()
    x, y = _data(16, 2, 2)
    grid.kernel_gradient_norms(_resnet(7), x, y, "binary_crossentropy")
    assert tf.config.optimizer.get_experimental_options() == before
    assert not before.get("disable_meta_optimizer")


@pytest.mark.parametrize("builder,kwargs", [
    ("build_mlp", dict(depth=4, width=5, activation="tanh", input_dim=2, output_dim=1)),
    ("build_resnet", dict(blocks=2, width=16, block="dense_bn_relu", activation="relu", input_dim=8, output_dim=4,
                          output_activation="softmax", stem_layers=1, stem_batch_norm=True, head_layers=0)),
])
def test_seeded_net_draws_the_weights_of_the_built_net(builder, kwargs):
    """seeded_net's weights at seeds 5 and 2**31 + 3 are those of the net built at that seed, bit for bit, and
    its norms those of the built net."""
    x, y = _data(32, kwargs["input_dim"], 3, None if kwargs["output_dim"] == 1 else kwargs["output_dim"])
    loss = "binary_crossentropy" if kwargs["output_dim"] == 1 else "sparse_categorical_crossentropy"
    for seed in (5, 2**31 + 3):
        template, weights = grid.seeded_net(builder, seed, **kwargs)
        built = getattr(models, builder)(**kwargs, seed=seed)
        assert weights is not None
        assert all(np.array_equal(keras.ops.convert_to_numpy(w), keras.ops.convert_to_numpy(v.value))
                   for w, v in zip(weights[0] + weights[1], built.trainable_variables + built.non_trainable_variables))
        assert list(grid.kernel_gradient_norms(template, x, y, loss, weights).values()) == \
            list(diagnostics.gradient_norms(built, x, y, loss, training=True).values())


def test_seeded_net_builds_a_net_it_cannot_redraw():
    """An initializer without a seed (here a callable that takes none): the net of that seed, built."""
    def ones(shape, dtype=None):
        return keras.ops.ones(shape, dtype)

    model, weights = grid.seeded_net("build_mlp", 5, depth=2, width=3, initializer=ones)
    assert weights is None and model.get_layer("hidden_1").kernel_initializer is ones


def test_redrawn_draws_the_nets_of_any_builder_that_seeds_its_layers():
    """grid.redrawn with a builder function (the reference build_resnet, as calibration calls it): the weights of
    the net built at seeds 5 and 2**31 + 3, bit for bit, from one template; a builder whose layer seeds are not the
    seed plus a fixed offset (here 2 * seed) is built at each seed."""
    def build(s):
        return reference.build_resnet(2, 4, 2, 1, activation="tanh", initializer="glorot_uniform", seed=s)

    def doubled(s):
        return build(2 * s)

    for seed in (5, 2**31 + 3):
        template, weights = grid.redrawn(build, seed, ("test", "reference", 2, 4))
        built = build(seed)
        assert weights is not None and grid._architecture(template) == grid._architecture(built)
        assert all(np.array_equal(keras.ops.convert_to_numpy(w), keras.ops.convert_to_numpy(v.value))
                   for w, v in zip(weights[0] + weights[1], built.trainable_variables + built.non_trainable_variables))
        model, weights = grid.redrawn(doubled, seed, ("test", "doubled", 2, 4))
        first = [keras.ops.convert_to_numpy(net.trainable_variables[0].value) for net in (model, build(2 * seed))]
        assert weights is None and np.array_equal(*first)


def test_batched_gradient_statistic_is_the_per_seed_one():
    """gradient_statistics, what calibration runs (the reference ResNets redrawn), gives gradient_statistic's floats
    (each ResNet built) for two seeds, at the test's depth with 2 model pairs per seed."""
    statistics = importlib.import_module("gradkit_grader.course.a4_resnet.statistics")
    check, tol = CHECKS["test_resnet_gradient"], {**tolerances("a4_resnet"), "grad_seeds": 2}
    comps = check.reference(tol)
    assert check.batched is statistics.gradient_statistics
    assert check.batched(comps, tol, [11, 12]) == [check.statistic(comps, tol, s) for s in (11, 12)]
    args = (tol["grad_blocks"], tol["grad_width"], 2, 1)
    assert any(key[:3] == ("build_resnet", reference.build_resnet, args) and inits is not None  # they were redrawn
               for key, (_, inits) in grid._TEMPLATES.items())


@pytest.mark.slow
def test_stored_grid_values_come_out_again():
    """The grid statistic of calibration.json's first 3 reference seeds, recomputed: the stored floats."""
    cal = json.loads((ROOT / "course" / "a4_resnet" / "calibration.json").read_text())
    stored = next(v["values"] for k, v in cal["checks"].items() if k.startswith("test_grid_statement:"))
    check, tol = CHECKS["test_grid_statement"], tolerances("a4_resnet")
    seeds = spread_seeds(cal["runs"], cal["first_seed"])[:3]
    assert [check.statistic(check.reference(tol), tol, s) for s in seeds] == stored[:3]


def test_traced_short_training_gives_the_eager_fit_losses_bit_for_bit():
    """training.traced_losses: every epoch's loss of training_statistic's eager fit, for three nets of the reference
    architecture (one trace) and a net of another (a ReLU plain stack); the statistic of two seeds through
    training_statistics, what calibration runs, is training_statistic's."""
    import math

    from gradkit_grader.globalseed import set_global_seed

    statistics = importlib.import_module("gradkit_grader.course.a4_resnet.statistics")
    training = importlib.import_module("gradkit_grader.course.a4_resnet.training")
    tol = tolerances("a4_resnet")
    x, y = statistics._spirals(tol, 7)
    builds = [lambda s: reference.build_resnet(tol["train_blocks"], tol["train_width"], 2, 1, activation="relu",
                                               initializer="he_normal", output_activation="sigmoid", seed=s)] * 3
    builds.append(lambda s: models.build_mlp(5, tol["train_width"], activation="relu", initializer="he_normal",
                                             input_dim=2, output_dim=1, seed=s))
    for k, build in enumerate(builds):
        set_global_seed(100 + k)
        model = build(100 + k)
        traced = training.traced_losses(model, x, y, tol)
        set_global_seed(100 + k)
        model = build(100 + k)
        model.compile(optimizer=keras.optimizers.Adam(tol["train_lr"]), loss="binary_crossentropy", run_eagerly=True)
        eager = model.fit(x, y, batch_size=len(x), epochs=tol["train_steps"], shuffle=False, verbose=0)
        assert len(traced) == tol["train_steps"] and all(math.isfinite(v) for v in traced)
        assert traced == eager.history["loss"], k
    inputs = keras.Input((2,))  # a regularizer: its penalty is not the trace's to vouch for, so the eager fit
    hidden = keras.layers.Dense(4, activation="relu", kernel_regularizer="l2")(inputs)
    regularized = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    assert grid._architecture(regularized) is not None and training.traced_losses(regularized, x, y, tol) is None
    check, comps = CHECKS["test_resnet_trains"], statistics.reference(tol)
    assert check.batched is statistics.training_statistics
    assert check.batched(comps, tol, [3, 4]) == [check.statistic(comps, tol, s) for s in (3, 4)]
