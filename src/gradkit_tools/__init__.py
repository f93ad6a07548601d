"""gradkit_tools: the tool chain of the kit (never shipped to students or in autograder zips).

``gradkit`` CLI (:mod:`gradkit_tools.cli`): ``release`` (student notebooks, autograders),
``grade`` / ``merge`` (batch grading without Docker), ``examples`` / ``grade-examples``
(submissions built from each assignment's catalogue of answers, graded against their expected
scores), ``sweep`` / ``calibrate`` (false-fail budgets of the stochastic hidden tests), ``main``
(the README's main job). :mod:`gradkit_tools.course` finds the assignments under ``course/`` and
reads their tolerances.
"""

__all__: list[str] = []
