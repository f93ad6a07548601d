"""grading.yml: schema validation, clear errors, and a source comment on every number."""
import re
from pathlib import Path

import pytest

from gradkit.config import ConfigError, load_config, tolerances

ROOT = Path(__file__).resolve().parents[1]


def test_repository_config_is_valid():
    cfg = load_config(ROOT / "grading.yml")
    assert cfg["version"] == 1
    assert 0 < cfg["collapse"]["rtol"] < 1
    assert set(cfg["assignments"]) >= {"a1_clipping", "a2_init", "a3_dying_relu", "a4_resnet"}


def test_unknown_key_names_key_and_file(tmp_path):
    bad = tmp_path / "grading.yml"
    bad.write_text("version: 1\nstudy:\n  epocs: 3  # typo\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert "study.epocs" in str(exc.value) and str(bad) in str(exc.value)


def test_unknown_top_level_key(tmp_path):
    bad = tmp_path / "g.yml"
    bad.write_text("version: 1\ntolerance: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'tolerance'"):
        load_config(bad)


@pytest.mark.parametrize("text, msg", [
    ("version: one\n", "'version' must be int"),
    ("collapse:\n  rtol: true\n", "must be a number, got a boolean"),
    ("collapse: 3\n", "'collapse' must be a mapping"),
    ("version: [1\n", "not valid YAML"),
])
def test_bad_values_are_reported(tmp_path, text, msg):
    f = tmp_path / "g.yml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(msg)):
        load_config(f)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yml")


def test_tolerances_unknown_assignment(tmp_path):
    f = tmp_path / "g.yml"
    f.write_text("assignments:\n  a1: {x: 1}  # test\n")
    assert tolerances("a1", f) == {"x": 1}
    with pytest.raises(ConfigError, match="no section assignments.a9"):
        tolerances("a9", f)


def test_every_number_has_a_source_comment():
    """Each line of grading.yml holding a number (or list of numbers) must carry a comment."""
    number = re.compile(r":\s*\[?\s*-?\d")
    missing = [
        f"line {i}: {line.strip()}"
        for i, line in enumerate((ROOT / "grading.yml").read_text().splitlines(), 1)
        if number.search(line.split("#", 1)[0]) and "#" not in line
    ]
    assert not missing, "numbers without a source comment in grading.yml:\n" + "\n".join(missing)


def test_per_call_limits_stay_under_the_per_test_ceiling():
    """Every time limit an assignment's hidden tests use is below grade.test_timeout_s,
    which is below the whole submission's limit."""
    cfg = load_config(ROOT / "grading.yml")
    ceiling = cfg["grade"]["test_timeout_s"]
    assert ceiling < cfg["grade"]["submission_timeout_s"]
    limits = {f"{a}.{k}": v for a, sec in cfg["assignments"].items() for k, v in sec.items() if k.endswith("timeout_s")}
    assert limits, "assignments declare no time limits"
    over = {k: v for k, v in limits.items() if not 0 < v <= ceiling}
    assert not over, f"time limits above grade.test_timeout_s={ceiling}: {over}"
