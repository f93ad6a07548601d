"""TensorBoard histograms read back from event files (gradkit.tbevents), against what was logged."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from gradkit.diagnostics import GradientHistogramCallback, gradients
from gradkit.tbevents import plot_histograms, read_histograms

pytest.importorskip("tensorflow")  # the callback's event writer


def _logged_run(tmp_path, name="run_a", epochs=3):
    import keras

    model = keras.Sequential([keras.Input((3,)),
                              keras.layers.Dense(4, activation="tanh", name="h",
                                                 kernel_initializer=keras.initializers.GlorotUniform(seed=1)),
                              keras.layers.Dense(1, activation="sigmoid", name="out",
                                                 kernel_initializer=keras.initializers.GlorotUniform(seed=2))])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)).astype("float32"), (rng.random((32, 1)) > 0.5).astype("float32")
    cb = GradientHistogramCallback(tmp_path / name, x, y, freq=1, buckets=7)
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, shuffle=False, callbacks=[cb])
    return model, x, y


def test_histograms_read_back_are_those_of_the_gradients(tmp_path):
    model, x, y = _logged_run(tmp_path)
    hists = read_histograms(tmp_path / "run_a" / "train")
    paths = [model.get_layer(k).kernel.path for k in ("h", "out")]
    assert list(hists) == [f"gradients/{p}" for p in paths]
    last = gradients(model, x, y, "binary_crossentropy")  # the final log is taken on the final weights
    for path in paths:
        steps = hists[f"gradients/{path}"]
        assert list(steps) == [0, 1, 2]
        edges, counts = steps[2]
        assert edges.shape == (8,) and counts.shape == (7,) and np.all(np.diff(edges) > 0)
        want_counts, want_edges = np.histogram(np.asarray(last[path], np.float64).ravel(), bins=7)
        np.testing.assert_allclose(edges, want_edges, rtol=1e-5, atol=1e-9)  # float32 gradients, same binning
        np.testing.assert_array_equal(counts, want_counts)
    weights = read_histograms(tmp_path / "run_a" / "train", prefix="weights/")
    assert list(weights) == [f"weights/{p}" for p in paths]


def test_several_runs_are_told_apart_and_drawn(tmp_path):
    _logged_run(tmp_path, "run_a", epochs=2)
    _logged_run(tmp_path, "run_b", epochs=1)
    hists = read_histograms(tmp_path)
    assert {t.split("/gradients/")[0] for t in hists} == {"run_a/train", "run_b/train"}
    assert {len(s) for t, s in hists.items() if t.startswith("run_a")} == {2}
    fig = plot_histograms(hists, max_tags=2, title="two runs")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2  # one curve per logged step
    with pytest.raises(KeyError, match="known tags"):
        plot_histograms(hists, ["gradients/nope"])


def test_an_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="GradientHistogramCallback"):
        read_histograms(tmp_path)
