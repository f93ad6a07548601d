"""Tests of gradkit.plots: structure of the returned figures, and that they save."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gradkit.plots import (  # noqa: E402
    plot_activation_histogram_grid,
    plot_activation_histograms,
    plot_decision_boundary,
    plot_gradient_norms,
    plot_training_curves,
)

RNG = np.random.default_rng(0)


def _saves(fig: Figure, tmp_path, name="fig.png") -> None:
    path = tmp_path / name
    fig.savefig(path, dpi=60)
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50


def _layers(n_layers=5, scale=0.7):
    return {f"dense_{i}": np.tanh(RNG.normal(scale=scale ** i, size=(64, 10)))
            for i in range(n_layers)}


def test_plot_gradient_norms_lines_legend_log_scale(tmp_path):
    plain = [10.0 ** -k for k in range(6, 0, -1)]
    resnet = {f"layer{i}/kernel": 0.5 + 0.1 * i for i in range(6)}
    fig = plot_gradient_norms({"plain": plain, "resnet": resnet})
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["plain", "resnet"]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), np.arange(1, 7))
    np.testing.assert_allclose(ax.lines[1].get_ydata(), list(resnet.values()))
    _saves(fig, tmp_path)


def test_plot_gradient_norms_single_run_and_given_axes():
    fig = plot_gradient_norms({"a/kernel": 1.0, "b/kernel": 2.0}, logy=False)
    ax = fig.axes[0]
    assert len(ax.lines) == 1 and ax.get_legend() is None and ax.get_yscale() == "linear"
    own = Figure()
    target = own.add_subplot()
    assert plot_gradient_norms({"x": [1, 2]}, ax=target) is own
    assert len(target.lines) == 1


def test_plot_activation_histograms_one_panel_per_layer(tmp_path):
    layers = _layers()
    fig = plot_activation_histograms(layers, title="tanh, N(0, 0.10)", bins=20)
    assert len(fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes] == list(layers)
    assert all(len(ax.patches) == 20 for ax in fig.axes)
    assert fig.axes[0].get_shared_x_axes().joined(fig.axes[0], fig.axes[4])
    assert fig.get_suptitle() == "tanh, N(0, 0.10)"
    _saves(fig, tmp_path)
    # a plain list of arrays is accepted and labelled by position
    fig = plot_activation_histograms(list(layers.values())[:2], bins=5, value_range=(-1, 1))
    assert [ax.get_title() for ax in fig.axes] == ["layer 1", "layer 2"]
    assert fig.axes[0].get_xlim()[0] <= -1 and fig.axes[0].get_xlim()[1] >= 1
    # one number per layer (a shape, a dict of stds) is not what a histogram shows: the error names the entry
    with pytest.raises(ValueError, match=r"layer 1: one number \(256\)"):
        plot_activation_histograms((256, 256))
    with pytest.raises(ValueError, match="dense_1: one number"):
        plot_activation_histogram_grid({"He": {"dense_1": 0.58}})


def test_plot_activation_histogram_grid_rows_are_configs(tmp_path):
    configs = {f"N(0, {s})": _layers(scale=s) for s in (0.10, 0.14, 0.28)}
    fig = plot_activation_histogram_grid(configs, title="tanh", bins=15)
    assert len(fig.axes) == 15
    assert all(len(ax.patches) == 15 for ax in fig.axes)
    assert [fig.axes[5 * r].get_ylabel() for r in range(3)] == list(configs)
    assert fig.axes[0].get_shared_x_axes().joined(fig.axes[0], fig.axes[14])
    _saves(fig, tmp_path)
    ragged = plot_activation_histogram_grid({"a": _layers(3), "b": _layers(2)}, bins=4)
    assert len(ragged.axes) == 6
    assert sum(ax.get_visible() for ax in ragged.axes) == 5


def _history():
    h = keras.callbacks.History()
    h.history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7],
                 "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.45, 0.6, 0.65]}
    return h


def test_plot_training_curves(tmp_path):
    fig = plot_training_curves(_history(), metrics=("loss", "accuracy"), title="plain MLP")
    assert len(fig.axes) == 2
    for ax, metric in zip(fig.axes, ("loss", "accuracy")):
        assert len(ax.lines) == 2
        assert ax.get_ylabel() == metric
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]
        np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 2, 3])
    _saves(fig, tmp_path)
    fig = plot_training_curves({"loss": [3.0, 2.0]}, metrics="loss")
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 1
    with pytest.raises(KeyError, match="accuracy"):
        plot_training_curves({"loss": [1.0]}, metrics=("accuracy",))
    with pytest.raises(ValueError, match="one Axes per metric"):
        plot_training_curves(_history(), metrics=("loss", "accuracy"), ax=Figure().add_subplot())


def _circles(n=120):
    r = np.where(np.arange(n) % 2 == 0, 0.5, 1.5) + RNG.normal(scale=0.1, size=n)
    t = RNG.uniform(0, 2 * np.pi, size=n)
    return np.column_stack([r * np.cos(t), r * np.sin(t)]), (np.arange(n) % 2)


def test_plot_decision_boundary_probability_fn(tmp_path):
    X, y = _circles()
    prob = lambda g: 1 / (1 + np.exp(-8 * (np.hypot(g[:, 0], g[:, 1]) - 1.0)))  # noqa: E731
    fig = plot_decision_boundary(prob, X, y, resolution=50)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 1 and len(scatters[0].get_offsets()) == len(X)
    assert ax.get_xlim()[0] < X[:, 0].min() and ax.get_xlim()[1] > X[:, 0].max()
    _saves(fig, tmp_path)


@pytest.mark.backends
def test_plot_decision_boundary_keras_multiclass(tmp_path):
    X = RNG.normal(size=(90, 2))
    y = np.repeat([0, 1, 2], 30)
    init = keras.initializers.GlorotNormal(seed=0)
    model = keras.Sequential([keras.Input((2,)),
                              keras.layers.Dense(3, activation="softmax", kernel_initializer=init)])
    fig = plot_decision_boundary(model, X, y, resolution=30, title="softmax")
    assert fig.axes[0].get_title() == "softmax"
    _saves(fig, tmp_path)
    with pytest.raises(ValueError, match="shape"):
        plot_decision_boundary(model, RNG.normal(size=(5, 3)), np.zeros(5))
