"""The course's figures: gradient norms by depth, activation histograms per
layer, training curves, decision boundaries.

Every function returns a :class:`matplotlib.figure.Figure` and calls neither
``plt.show()`` nor any global style setter. Figures are created with
``matplotlib.figure.Figure`` (not through pyplot), so they are not kept alive
by pyplot and are displayed exactly once when a notebook cell returns them;
pass ``ax=`` to draw into a figure of your own. All work under Agg.
"""
from __future__ import annotations

from numbers import Real
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

__all__ = [
    "plot_gradient_norms",
    "plot_activation_histograms",
    "plot_activation_histogram_grid",
    "plot_training_curves",
    "plot_decision_boundary",
]


def _new_axes(ax: Axes | None, figsize=(6.0, 4.0)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _values(norms: Sequence[float] | Mapping[str, float]) -> np.ndarray:
    if isinstance(norms, Mapping):
        norms = list(norms.values())
    return np.asarray(norms, dtype=float).ravel()


def plot_gradient_norms(runs: Mapping[str, Sequence[float] | Mapping[str, float]], *,
                        ax: Axes | None = None, logy: bool = True,
                        title: str | None = "Gradient norm per layer") -> Figure:
    """Gradient norm against depth, one line per run.

    Parameters
    ----------
    runs : mapping
        Label (e.g. ``"plain"``, ``"resnet"``) -> per-layer norms, input side
        first, as a sequence of length ``L`` or as the mapping returned by
        :func:`gradkit.diagnostics.gradient_norms`. A single such mapping of
        floats is drawn as one unlabelled run.
    ax : matplotlib.axes.Axes, optional
    logy : bool
        Log-scale y axis (norms across depth span orders of magnitude).
    title : str or None

    Returns
    -------
    matplotlib.figure.Figure
    """
    if runs and all(isinstance(v, Real) for v in runs.values()):
        runs = {"": runs}
    fig, ax = _new_axes(ax)
    for label, norms in runs.items():
        y = _values(norms)
        ax.plot(np.arange(1, len(y) + 1), y, marker="o", markersize=3, label=label or None)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("layer (1 = input side)")
    ax.set_ylabel(r"$\|\partial L / \partial W_\ell\|_2$")
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    if any(label for label in runs):
        ax.legend()
    return fig


def _layers(outputs: Mapping[str, Any] | Sequence[Any]) -> dict[str, np.ndarray]:
    if isinstance(outputs, Mapping):
        items = outputs.items()
    else:
        items = ((f"layer {i}", a) for i, a in enumerate(outputs, start=1))
    layers = {}
    for k, v in items:
        values = np.asarray(v, dtype=float)
        if values.ndim == 0:  # e.g. a shape tuple or a dict of stds passed in place of the outputs
            raise ValueError(f"{k!s}: one number ({values.item():g}); a histogram needs the layer's outputs, "
                             "an array such as gradkit.diagnostics.layer_outputs gives")
        layers[str(k)] = values.ravel()
    return layers


def _hist_range(arrays, value_range):
    if value_range is not None:
        return tuple(value_range)
    finite = [a[np.isfinite(a)] for a in arrays]
    finite = [a for a in finite if a.size]
    if not finite:
        return (-1.0, 1.0)
    lo, hi = min(a.min() for a in finite), max(a.max() for a in finite)
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def _hist_panel(ax: Axes, values: np.ndarray, bins: int, value_range, color=None) -> None:
    ax.hist(values, bins=bins, range=value_range, color=color)
    ax.text(0.97, 0.95, f"std={np.std(values):.3g}", transform=ax.transAxes,
            ha="right", va="top", fontsize="small",
            bbox=dict(facecolor="white", alpha=0.8, edgecolor="none", pad=1.0))
    ax.tick_params(labelsize="small")


def plot_activation_histograms(outputs_by_layer: Mapping[str, Any] | Sequence[Any], *,
                               title: str | None = None, bins: int = 50,
                               value_range: tuple[float, float] | None = None) -> Figure:
    """Histogram of each layer's activation values, one panel per layer.

    Parameters
    ----------
    outputs_by_layer : mapping or sequence
        Layer name -> array of any shape ``(n, ...)`` (all entries pooled),
        e.g. :func:`gradkit.diagnostics.layer_outputs`; or a list of arrays.
    title : str, optional
        Figure title (e.g. ``"tanh, N(0, 0.10)"``).
    bins : int
    value_range : (float, float), optional
        Common histogram range; default: the range of all values. The x axis
        is shared, so a collapse towards 0 with depth is visible at a glance.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(outputs_by_layer)`` axes in one row; each has ``bins`` patches.

    Raises
    ------
    ValueError
        An entry that is one number (a shape or a std passed in place of
        the outputs), naming it.
    """
    return plot_activation_histogram_grid({"count": outputs_by_layer}, title=title, bins=bins,
                                          value_range=value_range)


def plot_activation_histogram_grid(configs: Mapping[str, Mapping[str, Any] | Sequence[Any]], *,
                                   title: str | None = None, bins: int = 50,
                                   value_range: tuple[float, float] | None = None) -> Figure:
    """Activation histograms for several configurations side by side.

    Parameters
    ----------
    configs : mapping
        Configuration label (``"N(0, 0.10)"``, ``"Glorot"``, ``"He"``) ->
        per-layer outputs as in :func:`plot_activation_histograms`. Rows are
        configurations, columns layers; all panels share one x axis. Rows
        with fewer layers leave their last panels hidden.
    title, bins, value_range
        As in :func:`plot_activation_histograms`.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(configs) * max_layers`` axes.
    """
    rows = {label: _layers(outputs) for label, outputs in configs.items()}
    if not rows or not any(rows.values()):
        raise ValueError("nothing to plot")
    n_cols = max(len(layers) for layers in rows.values())
    rng = _hist_range([a for layers in rows.values() for a in layers.values()], value_range)
    fig = Figure(figsize=(2.4 * n_cols, 2.0 * len(rows) + 0.4), layout="constrained")
    grid = fig.subplots(len(rows), n_cols, sharex=True, squeeze=False)
    header = list(next(iter(rows.values())))
    for r, (label, layers) in enumerate(rows.items()):
        color = f"C{r}"
        for c in range(n_cols):
            ax = grid[r, c]
            if c >= len(layers):
                ax.set_visible(False)
                continue
            name, values = list(layers.items())[c]
            _hist_panel(ax, values, bins, rng, color=color)
            if r == 0 or c >= len(header) or name != header[c]:
                ax.set_title(name, fontsize="medium")
        grid[r, 0].set_ylabel(label, fontsize="medium")
    for c in range(n_cols):
        grid[-1, c].set_xlabel("activation")
    if title:
        fig.suptitle(title)
    return fig


def _history_dict(history) -> dict[str, list[float]]:
    hist = getattr(history, "history", history)
    if not isinstance(hist, Mapping):
        raise TypeError(f"history must be a keras History or a dict, got {type(history).__name__}")
    return {str(k): list(v) for k, v in hist.items()}


def plot_training_curves(history, *, metrics: str | Sequence[str] = ("loss",),
                         ax: Axes | Sequence[Axes] | None = None,
                         title: str | None = None) -> Figure:
    """Training and validation curves per epoch.

    Parameters
    ----------
    history : keras.callbacks.History or dict
        ``model.fit(...)``'s return value or its ``.history`` dict: metric
        name -> list of per-epoch values; ``"val_<metric>"`` entries, when
        present, are drawn as the validation curve.
    metrics : str or sequence of str
        One panel per metric, e.g. ``("loss", "accuracy")``.
    ax : Axes or sequence of Axes, optional
        One per metric.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        ``len(metrics)`` axes with one line per curve (train, validation).
    """
    hist = _history_dict(history)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [m for m in metrics if m not in hist]
    if missing:
        raise KeyError(f"metrics {missing} not in history (have: {', '.join(sorted(hist))})")
    if ax is None:
        fig = Figure(figsize=(4.5 * len(metrics), 3.5), layout="constrained")
        axes = list(fig.subplots(1, len(metrics), squeeze=False)[0])
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) != len(metrics):
            raise ValueError(f"need one Axes per metric ({len(metrics)}), got {len(axes)}")
        fig = axes[0].figure
    for a, metric in zip(axes, metrics):
        train = hist[metric]
        epochs = np.arange(1, len(train) + 1)
        a.plot(epochs, train, marker="o", markersize=3, label="train")
        if f"val_{metric}" in hist:
            val = hist[f"val_{metric}"]
            a.plot(np.arange(1, len(val) + 1), val, marker="s", markersize=3, label="validation")
        a.set_xlabel("epoch")
        a.set_ylabel(metric)
        a.grid(True, alpha=0.3)
        a.legend()
    if title:
        (axes[0].set_title if len(axes) == 1 else fig.suptitle)(title)
    return fig


def _predictor(model_or_fn) -> Callable[[np.ndarray], np.ndarray]:
    try:
        import keras
    except ImportError:  # pragma: no cover - keras is a dependency
        keras = None
    if keras is not None and isinstance(model_or_fn, keras.Model):
        def predict(grid, _m=model_or_fn):
            parts = [keras.ops.convert_to_numpy(_m(grid[i:i + 8192], training=False))
                     for i in range(0, len(grid), 8192)]
            return np.concatenate(parts, axis=0)
        return predict
    if callable(model_or_fn):
        return lambda grid: np.asarray(model_or_fn(grid))
    raise TypeError("expected a keras.Model or a callable mapping (n, 2) points to predictions")


def plot_decision_boundary(model_or_predict_fn, X, y, ax: Axes | None = None, *,
                           resolution: int = 200, margin: float = 0.5, threshold: float = 0.5,
                           title: str | None = None) -> Figure:
    """Predicted class regions of a 2-D classifier, with the data on top.

    Parameters
    ----------
    model_or_predict_fn : keras.Model or callable
        Maps points ``(m, 2)`` to either probabilities of class 1, shape
        ``(m,)`` or ``(m, 1)`` (filled as a probability map with the
        ``threshold`` contour drawn), or class scores ``(m, k)``, ``k >= 2``
        (filled by argmax class).
    X : array-like, shape ``(n, 2)``
    y : array-like, shape ``(n,)`` or ``(n, 1)``
        Integer class labels.
    ax : Axes, optional
    resolution : int
        Grid points per axis.
    margin : float
        Padding around the data's bounding box.
    threshold : float
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).ravel()
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have shape (n, 2), got {X.shape}")
    (x0, y0), (x1, y1) = X.min(axis=0) - margin, X.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.column_stack([gx.ravel(), gy.ravel()]).astype("float32")
    pred = _predictor(model_or_predict_fn)(grid)
    pred = pred.reshape(len(grid), -1)
    fig, ax = _new_axes(ax, figsize=(5.0, 4.5))
    classes = np.unique(y)
    if pred.shape[1] == 1:
        prob = pred[:, 0].reshape(gx.shape)
        ax.contourf(gx, gy, prob, levels=np.linspace(0.0, 1.0, 11), cmap="RdBu_r", alpha=0.4,
                    extend="both")
        ax.contour(gx, gy, prob, levels=[threshold], colors="k", linewidths=1.2)
        cmap, vmin, vmax = ListedColormap(["tab:blue", "tab:red"]), 0, 1
    else:
        k = pred.shape[1]
        cls = pred.argmax(axis=1).reshape(gx.shape)
        ax.contourf(gx, gy, cls, levels=np.arange(k + 1) - 0.5, cmap="tab10", vmin=0, vmax=9,
                    alpha=0.35)
        cmap, vmin, vmax = "tab10", 0, 9
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=vmin, vmax=vmax, s=14,
               edgecolors="white", linewidths=0.5)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(title or f"decision boundary ({len(classes)} classes)")
    return fig
