"""The course files: course/grading.yml (class-wide limits) and course/<name>/tolerances.yml (per
assignment): schema validation, clear errors, a source comment on every number, short lines."""
import re
from pathlib import Path

import pytest

from gradkit_tools.course import (
    ConfigError,
    assignments,
    budgets,
    forbidden,
    load_limits,
    load_tolerances,
    tolerances,
)

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
COURSE_FILES = [COURSE / "grading.yml", *sorted(COURSE.glob("*/tolerances.yml"))]


def _course(tmp_path: Path, limits: str | None = None, **tolerance_files: str) -> Path:
    """A course folder under ``tmp_path``: ``grading.yml`` = ``limits`` (if given) and, per keyword
    ``name=text``, an assignment folder ``name/`` with a master and ``tolerances.yml`` = ``text``."""
    course = tmp_path / "course"
    course.mkdir(exist_ok=True)
    if limits is not None:
        (course / "grading.yml").write_text(limits)
    for name, text in tolerance_files.items():
        (course / name).mkdir(exist_ok=True)
        (course / name / f"{name}.ipynb").write_text("{}\n")
        (course / name / "tolerances.yml").write_text(text)
    return course


def test_repository_course_is_valid():
    limits = load_limits(COURSE)
    assert limits["version"] == 1
    names = {a.name for a in assignments(COURSE)}
    assert names >= {"a1_clipping", "a2_init", "a3_dying_relu", "a4_resnet"}
    for name in names:
        tol = load_tolerances(name, COURSE)  # validates every tolerances.yml, budgets included
        assert tol and tolerances(name, COURSE) == {k: v for k, v in tol.items() if k not in ("budgets", "forbidden")}
        assert all(0 < b["budget"] < 1 and b["method"] in ("exact", "empirical")
                   for b in budgets(name, COURSE).values())
        rules = forbidden(name, COURSE)  # each stub's forbidden calls: prefixes and a reason for the student
        assert rules == tol.get("forbidden", {}) and all(r["reason"] and (r.get("calls") or r.get("direct"))
                                                          for r in rules.values())
    # the definition of a collapsed network (formerly the collapse section of the root grading.yml)
    assert 0 < tolerances("a3_dying_relu", COURSE)["rtol"] < 1


def test_unknown_key_names_key_and_file(tmp_path):
    course = _course(tmp_path, "version: 1\ngrade:\n  test_timout_s: 3  # typo\n")
    with pytest.raises(ConfigError) as exc:
        load_limits(course)
    assert "grade.test_timout_s" in str(exc.value) and str(course / "grading.yml") in str(exc.value)
    course = _course(tmp_path, a1="atol: 1.0  # x\nbudgets:\n  test_x: {budget: 1.0e-4, methd: exact}  # typo\n")
    with pytest.raises(ConfigError) as exc:
        load_tolerances("a1", course)
    assert "budgets.test_x.methd" in str(exc.value) and str(course / "a1" / "tolerances.yml") in str(exc.value)


def test_unknown_top_level_key(tmp_path):
    course = _course(tmp_path, "version: 1\ntolerance: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'tolerance'"):
        load_limits(course)


@pytest.mark.parametrize("text, msg", [
    ("version: one\n", "'version' must be int"),
    ("grade:\n  test_timeout_s: true\n", "must be a number, got a boolean"),
    ("grade: 3\n", "'grade' must be a mapping"),
    ("version: [1\n", "not valid YAML"),
])
def test_bad_limits_are_reported(tmp_path, text, msg):
    with pytest.raises(ConfigError, match=re.escape(msg)):
        load_limits(_course(tmp_path, text))


@pytest.mark.parametrize("text, msg", [
    ("budgets:\n  test_x: {budget: true, method: exact}\n", "must be a number, got a boolean"),
    ("budgets: 3\n", "'budgets' must be a mapping"),
    ("budgets:\n  test_x: {budget: 1.0e-4, method: 3}\n", "'budgets.test_x.method' must be str"),
    ("atol: {a: 1}\n", "'atol' must be int/float/str/bool/list"),
    ("atol: [1\n", "not valid YAML"),
])
def test_bad_tolerances_are_reported(tmp_path, text, msg):
    course = _course(tmp_path, a1=text)
    with pytest.raises(ConfigError, match=re.escape(msg)):
        load_tolerances("a1", course)
    with pytest.raises(ConfigError, match=re.escape(msg)):
        tolerances("a1", course)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_limits(_course(tmp_path))  # a course folder without grading.yml
    with pytest.raises(ConfigError, match="course folder not found"):
        load_limits(tmp_path / "nope")
    course = _course(tmp_path, a1="atol: 1.0  # x\n")
    (course / "a1" / "tolerances.yml").unlink()
    with pytest.raises(ConfigError, match=re.escape(f"not found: {course / 'a1' / 'tolerances.yml'}")):
        tolerances("a1", course)


def test_tolerances_unknown_assignment(tmp_path):
    course = _course(tmp_path, a1="x: 1  # test\nbudgets:\n  test_x: {budget: 1.0e-4, method: exact}  # test\n")
    assert tolerances("a1", course) == {"x": 1}
    assert budgets("a1", course) == {"test_x": {"budget": 1.0e-4, "method": "exact"}}
    with pytest.raises(ConfigError, match=r"no master notebook .*a9/a9\.ipynb \(assignments found: a1\)"):
        tolerances("a9", course)


def test_every_number_has_a_source_comment():
    """Each line of the course files holding a number (or list of numbers) must carry a comment."""
    number = re.compile(r":\s*[\[{]?\s*-?\d")
    missing = [
        f"{f.relative_to(ROOT)} line {i}: {line.strip()}"
        for f in COURSE_FILES
        for i, line in enumerate(f.read_text().splitlines(), 1)
        if number.search(line.split("#", 1)[0]) and "#" not in line
    ]
    assert len(COURSE_FILES) >= 5, COURSE_FILES
    assert not missing, "numbers without a source comment in the course files:\n" + "\n".join(missing)


def test_no_line_over_120_characters():
    """Reasons are one short line; derivations belong in the NOTES.md next to each file."""
    long = [f"{f.relative_to(ROOT)} line {i}: {len(line)} characters"
            for f in COURSE_FILES for i, line in enumerate(f.read_text().splitlines(), 1) if len(line) > 120]
    assert not long, "lines over 120 characters:\n" + "\n".join(long)


def test_per_call_limits_stay_under_the_per_test_ceiling():
    """Every time limit an assignment's hidden tests use is below grade.test_timeout_s,
    which is below the whole submission's limit."""
    grade = load_limits(COURSE)["grade"]
    ceiling = grade["test_timeout_s"]
    assert ceiling < grade["submission_timeout_s"]
    limits = {f"{a.name}.{k}": v for a in assignments(COURSE) for k, v in tolerances(a.name, COURSE).items()
              if k.endswith("timeout_s")}
    assert limits, "assignments declare no time limits"
    over = {k: v for k, v in limits.items() if not 0 < v <= ceiling}
    assert not over, f"time limits above grade.test_timeout_s={ceiling}: {over}"
