"""gradkit: auto-graded assignments on why deep networks fail to train, and the fixes.

The library behind the assignments and their hidden tests: data sets of the
seed notebooks, plain and residual MLP builders with the seeds' blocks and
pluggable components, gradient / activation diagnostics, an ensemble trainer that trains a thousand small
networks as one Keras model, statistics for tolerances, and the guards the
notebooks' public tests put around student calls. This is the package students
install (``gradkit release`` builds its wheel): it holds no answer to any stub.
The hidden tests' runtime, with the reference answers, is :mod:`gradkit_grader`
and the tool chain (``gradkit release``, ``gradkit grade``) :mod:`gradkit_tools`.

Keras 3 with any backend (TensorFlow by default; JAX and PyTorch work too).

Attributes are imported on first use (PEP 562), so importing the package does
not pay for importing Keras.
"""
from importlib import import_module

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "ACTIVATIONS": "gradkit.activations", "activation_name": "gradkit.activations",
    "get_activation": "gradkit.activations",
    "INITIALIZERS": "gradkit.initializers",
    "get_initializer": "gradkit.initializers",
    "BLOCKS": "gradkit.models", "bn_dense_dense_block": "gradkit.models", "build_mlp": "gradkit.models",
    "build_resnet": "gradkit.models", "dense_bn_relu_block": "gradkit.models",
    "variance_interval": "gradkit.stats", "wilson_interval": "gradkit.stats",
    "collapse_rate": "gradkit.ensemble",
}
_SUBMODULES = ("data", "diagnostics", "plots", "ensemble", "stats", "guard")

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = import_module(f"gradkit.{name}")
    else:
        raise AttributeError(f"module 'gradkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__
