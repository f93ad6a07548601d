"""gradkit_grader: the runtime of the hidden tests, shipped inside every autograder zip.

What a hidden test needs besides the student package :mod:`gradkit` (whose :mod:`gradkit.guard`
puts guards around student calls): per-submission seeds (:mod:`gradkit_grader.seeding`), banded partial
credit (:mod:`gradkit_grader.bands`), the description of a stochastic test
(:mod:`gradkit_grader.statistic`), and the assignment's own statistics module
(``gradkit_grader.course.<name>.statistics``, one per zip).

Imports go one way: ``gradkit_tools`` -> ``gradkit_grader`` -> ``gradkit``; nothing here imports
the tool chain (``tests/test_layout.py`` checks).
"""

__all__: list[str] = []
