"""Shared test set-up: quiet TensorFlow, a non-interactive matplotlib backend, Keras' state cleared
after each test module."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _forbidden_calls(request):
    """In an assignment's test module (one with ``NAME``), each stub's forbidden calls apply to
    ``student_call`` as they do in grading (:mod:`gradkit.forbid`, tolerances.yml ``forbidden``)."""
    name = getattr(request.module, "NAME", None)
    if not isinstance(name, str):
        yield
        return
    from gradkit.forbid import forbidding
    from gradkit_tools.course import ConfigError, forbidden

    try:
        rules = forbidden(name)
    except ConfigError:  # not an assignment of the repository's course
        rules = {}
    with forbidding(rules):
        yield


@pytest.fixture(autouse=True, scope="module")
def _keras_state_per_module():
    """After each test module, Keras' global state and TensorFlow's eager kernel cache are cleared
    (``keras.backend.clear_session``) and pyplot's figures closed: what the earlier modules built otherwise
    slows the later ones (measured: the a2 student-package screen 80 s alone, 144 s after the a2 and a4
    modules, 77 s with this). Without garbage collection, which a module's end does not need."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session(free_memory=False)


@pytest.fixture
def predictions(monkeypatch) -> list:
    """Every ``keras.Model.predict`` output of the test, ``(n, members)`` (output unit 0 of a member-axis
    model's ``(n, units, members)``), appended in call order; the list may be cleared between phases."""
    import keras
    import numpy as np

    seen: list = []
    predict = keras.Model.predict

    def recording(self, *args, **kwargs):
        out = predict(self, *args, **kwargs)
        seen.append(np.asarray(out)[:, 0, :])
        return out

    monkeypatch.setattr(keras.Model, "predict", recording)
    return seen


@pytest.fixture(scope="module")
def children_before() -> set:
    """This process's child processes when a module's grading fixture starts (request it there): whatever
    an earlier test left running for good, e.g. the multiprocessing resource tracker that spawned
    processes start and that lives until this process exits. Tests of leftover processes subtract it."""
    import psutil

    return set(psutil.Process().children(recursive=True))
