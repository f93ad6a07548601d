"""gradkit: auto-graded assignments on why deep networks fail to train, and the fixes.

The library behind the assignments and their hidden tests: data sets of the
seed notebooks, plain and residual MLP builders with pluggable components,
gradient / activation diagnostics, an ensemble trainer that trains a thousand
small networks as one Keras model, statistics for tolerances, and the release
and grading tool chain (``gradkit release``, ``gradkit grade``).

Keras 3 with any backend (TensorFlow by default; JAX and PyTorch work too).
"""
from gradkit import data, diagnostics, plots
from gradkit.activations import ACTIVATIONS, activation_name, get_activation
from gradkit.config import ConfigError, load_config, tolerances
from gradkit.initializers import INITIALIZERS, compute_fans, get_initializer
from gradkit.models import BLOCKS, bn_dense_dense_block, build_mlp, build_resnet, dense_bn_relu_block
from gradkit.stats import variance_interval, wilson_interval

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS", "BLOCKS", "INITIALIZERS", "ConfigError", "activation_name",
    "bn_dense_dense_block", "build_mlp", "build_resnet", "compute_fans", "data",
    "dense_bn_relu_block", "diagnostics", "get_activation", "get_initializer", "load_config",
    "plots", "tolerances", "variance_interval", "wilson_interval", "__version__",
]
