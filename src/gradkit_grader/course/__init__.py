"""The statistics modules of the assignments, as ``gradkit_grader.course.<name>.statistics``.

Each lives in its assignment's folder, ``course/<name>/statistics.py``. In a source checkout this
package's search path is extended by the course folders (the repository's ``course/``, and every
folder of the ``GRADKIT_COURSE`` environment variable, ``os.pathsep``-separated), so
``course/<name>/`` is the namespace package ``gradkit_grader.course.<name>``. In an autograder zip
``gradkit release`` places the one assignment's ``statistics.py`` under this package instead, so a
zip carries its own assignment's statistics only.
"""
import os
from pathlib import Path

__all__: list[str] = []


def _course_roots() -> list[str]:
    roots = [p for p in os.environ.get("GRADKIT_COURSE", "").split(os.pathsep) if p]
    checkout = Path(__file__).resolve().parents[3] / "course"  # src/gradkit_grader/course -> repository
    if checkout.is_dir():
        roots.append(str(checkout))
    return [r for r in roots if Path(r).is_dir()]


__path__ = [*__path__, *(r for r in _course_roots() if r not in __path__)]  # noqa: F821 - set by import
