"""The student's ResNets as a4_resnet's q2 tests build them: model ``k`` of a test seeded
``seed + k * seed_stride`` (:func:`model_seed`), each ``build_resnet`` call guarded and its shapes
checked (:func:`student_model`), and, in calibration only, redrawn from one built net where
:func:`gradkit_grader.course.a4_resnet.grid.redrawn` vouches for the same floats (:func:`resnet`).

Shared by :mod:`gradkit_grader.course.a4_resnet.statistics` (the gradient and short-training tests) and
:mod:`gradkit_grader.course.a4_resnet.spirals` (the spirals test).
"""
from __future__ import annotations

from typing import Any, Mapping

import keras

from gradkit.guard import student_call
from gradkit_grader.course.a4_resnet import grid
from gradkit_grader.globalseed import set_global_seed

__all__ = ["model_seed", "student_model", "resnet"]


def model_seed(seed: int, k: int, tol: Mapping[str, Any]) -> int:
    """Seed of model ``k`` of a test: ``seed + k * seed_stride`` (< 2**32, as NumPy requires)."""
    return (seed + k * tol["seed_stride"]) % 2**32


def student_model(build, tol: Mapping[str, Any], args: tuple, **kw) -> keras.Model:
    """``build(*args, output_activation="sigmoid", **kw)``, checked to be a model of the right shapes
    (a gradient or a loss of a model with another output shape would compare nothing)."""
    model = student_call(build, *args, output_activation="sigmoid", what="build_resnet",
                         timeout_s=tol["timeout_s"], **kw)
    if not isinstance(model, keras.Model):
        raise AssertionError(f"build_resnet returned {type(model).__name__}; return a keras.Model")
    call = f"build_resnet({', '.join(map(str, args))})"
    shapes = (tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)) if len(model.outputs) == 1 else None
    if shapes != ((None, args[2]), (None, args[3])):
        raise AssertionError(f"{call} maps {shapes[0] if shapes else '?'} to "
                             f"{shapes[1] if shapes else f'{len(model.outputs)} outputs'}; expected (None, {args[2]}) "
                             f"to (None, {args[3]}): the blocks, then Dense(output_dim, output_activation)")
    return model


def resnet(components: Mapping[str, Any], tol: Mapping[str, Any], args: tuple, s: int, *, redraw: bool = False,
           **kw) -> tuple[keras.Model, tuple[list, list] | None]:
    """``(the student's build_resnet(*args, seed=s, **kw), None)`` (:func:`student_model`); with ``redraw``
    (calibration: gradkit's own answers), where :func:`.grid.redrawn` vouches for it, its net of seed 0 and the
    weights of seed ``s``: the same floats without building the net (Keras' global seed set to a net's seed before
    building it, as the tests do before calling this)."""
    build = components["build_resnet"]
    if not redraw:
        return student_model(build, tol, args, seed=s, **kw), None

    def one(seed: int) -> keras.Model:
        set_global_seed(seed)
        return student_model(build, tol, args, seed=seed, **kw)

    return grid.redrawn(one, s, ("build_resnet", build, args, tuple(sorted(kw.items()))))
