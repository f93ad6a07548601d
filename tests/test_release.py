"""gradkit release on the toy master: layout, determinism, --check, leak scan, tolerance baking."""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import nbformat
import pytest

import gradkit
from _toy import TOY_COURSE, TOY_MASTER, copy_tree, make_tree, release_tree, released_toy
from gradkit_tools.bundle import RUNTIME_PACKAGES, runtime_sources
from gradkit_tools.cli import main
from gradkit_tools.course import ConfigError, assignment, tolerances
from gradkit_tools.release import ReleaseError, StaleReleaseError, bake_tolerances
from gradkit_tools.scan import master_secrets, scan_release
from gradkit_tools.wheel import student_wheel

ROOT = Path(__file__).resolve().parents[1]


def _hashes(root: Path) -> dict[str, str]:
    """sha256 of every generated file under ``root`` (the course sources left out)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "course" not in p.relative_to(root).parts}


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.relative_to(root).parts)


def test_release_writes_fixed_layout_with_banners(tmp_path):
    root = released_toy()
    course = ["course/" + f for f in _files(TOY_COURSE)]  # the sources, untouched by release
    assert {"course/grading.yml", "course/toy/tolerances.yml", "course/toy/toy.ipynb"} <= set(course)
    wheel = f"assignments/gradkit-{gradkit.__version__}-py3-none-any.whl"
    assert _files(root) == sorted([
        "assignments/GENERATED.md", wheel, "assignments/toy/GENERATED.md", "assignments/toy/toy.ipynb",
        "autograder/toy/GENERATED.md", "autograder/toy/autograder.zip", "autograder/toy/manifest.json",
        "autograder/toy/solution.ipynb", *course])
    assert all((root / f).read_bytes() == (TOY_COURSE.parent / f).read_bytes() for f in course)
    for folder in ("assignments/toy", "autograder/toy"):
        banner = (root / folder / "GENERATED.md").read_text()
        assert "gradkit release" in banner and "course/toy/toy.ipynb" in banner and "do not edit" in banner
    assert "do not edit" in (root / "assignments/GENERATED.md").read_text()
    # the student package: gradkit alone, byte-identical to a fresh build (tests/test_wheel.py tests the builder)
    with zipfile.ZipFile(root / wheel) as wf:
        assert {n.split("/")[0] for n in wf.namelist()} == {"gradkit", f"gradkit-{gradkit.__version__}.dist-info"}
    assert (root / wheel).read_bytes() == student_wheel(tmp_path).read_bytes()


def test_autograder_zip_is_deterministic_self_contained_and_baked():
    root = released_toy()
    zpath = root / "autograder/toy/autograder.zip"
    with zipfile.ZipFile(zpath) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        modes = {i.filename: i.external_attr >> 16 for i in infos}
        assert modes["run_autograder"] == modes["setup.sh"] == 0o100755
        assert modes["tests/q1.py"] == 0o100644
        q1 = zf.read("tests/q1.py").decode()
        env = zf.read("environment.yml").decode()
    # tolerances baked as a literal: the hidden test reads no file and imports no gradkit
    tol = tolerances("toy", TOY_COURSE)
    assert tol["atol"] == 1e-09 and repr(tol) in q1 and "tolerances" not in q1 and "hidden=True" in q1
    # the runtime packages travel in the zip (copied next to the notebook when grading) ...
    assert "files/gradkit/__init__.py" in names and "files/gradkit_grader/seeding.py" in names
    assert "files/gradkit_grader/statistic.py" in names and "files/gradkit_grader/course/__init__.py" in names
    assert "files/gradkit/config.py" not in names and "files/gradkit/release.py" not in names
    assert json.loads(zipfile.ZipFile(zpath).read("forbidden.json")) == {}  # the toy forbids nothing
    # ... the tool chain does not; of the statistics modules, the toy's own only
    assert "files/gradkit_tools/release.py" not in names and "files/gradkit/release.py" not in names
    assert not [n for n in names if n.startswith("files/gradkit_tools/")]
    assert [n for n in names if n.startswith("files/gradkit_grader/course/")] == [
        "files/gradkit_grader/course/__init__.py", "files/gradkit_grader/course/toy/statistics.py"]
    with zipfile.ZipFile(zpath) as zf:
        statistics = zf.read("files/gradkit_grader/course/toy/statistics.py")
    assert statistics == (TOY_COURSE / "toy" / "statistics.py").read_bytes()
    assert "python=3.11" in env and "keras~=3.15.1" in env
    manifest = json.loads((root / "autograder/toy/manifest.json").read_text())
    assert manifest["questions"] == {"q1": 2.0, "q2": 1.0, "q3": 1.0} and manifest["points_possible"] == 4.0
    assert manifest["zip_sha256"] == hashlib.sha256(zpath.read_bytes()).hexdigest()
    assert sorted(manifest["files"]) == names


def test_student_release_has_no_solution_or_hidden_test():
    root = released_toy()
    text = (root / "assignments/toy/toy.ipynb").read_text()
    for secret in ("clipped_reference", "np.maximum", "grid_for_hidden_check", "test_mean_square_hidden",
                   "BEGIN SOLUTION", "# SOLUTION", "hidden=True", "sum(range(1, 11))"):
        assert secret not in text, secret
    nb = nbformat.reads(text, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    assert all(c.get("outputs", []) == [] for c in nb.cells)
    assert scan_release(root / "assignments/toy", TOY_MASTER) == []


def test_release_is_byte_identical_twice(tmp_path):
    first = _hashes(released_toy())
    release_tree(make_tree(tmp_path))
    assert _hashes(tmp_path) == first


def test_check_passes_on_fresh_release(tmp_path, capsys):
    root = copy_tree(tmp_path)
    code = main(["release", "--check", "--course", str(root / "course"), "--assignments",
                 str(root / "assignments"), "--autograder", str(root / "autograder")])
    assert code == 0, capsys.readouterr().err
    assert "toy: up to date" in capsys.readouterr().out


def test_check_fails_on_hand_edited_file(tmp_path):
    root = copy_tree(tmp_path)
    nb = root / "assignments/toy/toy.ipynb"
    nb.write_text(nb.read_text().replace("Toy assignment", "Toy assignment (edited)"))
    (root / "autograder/toy/notes.txt").write_text("stray file\n")
    (root / "assignments/old").mkdir()
    (root / "assignments/old/GENERATED.md").write_text("generated by `gradkit release`\n")
    with pytest.raises(StaleReleaseError) as err:
        release_tree(root, check=True)
    diffs = "\n".join(err.value.differences)
    assert "differs:" in diffs and "assignments/toy/toy.ipynb" in diffs and "Toy assignment (edited)" in diffs
    assert "extra:" in diffs and "autograder/toy/notes.txt" in diffs
    assert f"extra: {root}/assignments/old/ (generated folder without a master)" in diffs
    assert _hashes(root)["assignments/toy/toy.ipynb"] != _hashes(released_toy())["assignments/toy/toy.ipynb"]


def test_check_fails_on_planted_solution_leak(tmp_path):
    root = copy_tree(tmp_path)
    path = root / "assignments/toy/toy.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "clipped_reference = np.maximum(np.asarray(x, dtype=float), 0.0)"))
    nbformat.write(nb, str(path))
    with pytest.raises(StaleReleaseError) as err:
        release_tree(root, check=True)
    leaks = [d for d in err.value.differences if d.startswith("leak:")]
    assert leaks and "toy.ipynb" in leaks[0] and "clipped_reference = np.maximum" in leaks[0]
    assert "solution code of q1" in leaks[0]


@pytest.mark.slow
def test_release_fails_when_master_leaks_a_marker(tmp_path):
    root = make_tree(tmp_path)
    master = root / "course/toy/toy.ipynb"
    nb = nbformat.read(str(master), as_version=4)
    nb.cells.insert(2, nbformat.v4.new_markdown_cell("Mark your answer with `# BEGIN SOLUTION`."))
    nbformat.write(nb, str(master))
    with pytest.raises(ReleaseError, match=r"assignments/toy/toy.ipynb: marker 'BEGIN SOLUTION'"):
        release_tree(root)
    assert not (root / "assignments").exists()  # nothing written when a release fails


@pytest.mark.slow
def test_release_fails_when_solution_misses_full_marks(tmp_path):
    root = make_tree(tmp_path)
    master = root / "course/toy/toy.ipynb"
    master.write_text(master.read_text().replace("total = sum(range(1, 11))", "total = sum(range(1, 10))"))
    with pytest.raises(ReleaseError, match=r"otter assign. failed for toy.ipynb \(exit 1\)"):
        release_tree(root)


def _nb(*sources: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def test_bake_tolerances_replaces_call_and_import():
    nb = _nb('def test_x(f):\n    from gradkit_tools.course import tolerances\n    tol = tolerances("toy")\n'
             '    assert f() < tol["atol"]\n\ntest_x(f)', "x = 1")
    assert bake_tolerances(nb, TOY_COURSE) == 1
    tol = tolerances("toy", TOY_COURSE)
    assert tol["atol"] == 1e-09
    assert nb.cells[0].source == f"def test_x(f):\n    tol = {tol!r}\n    assert f() < tol[\"atol\"]\n\ntest_x(f)"
    assert nb.cells[1].source == "x = 1"


def test_bake_tolerances_rejects_what_it_cannot_evaluate():
    with pytest.raises(ReleaseError, match="cannot bake"):
        bake_tolerances(_nb("name = 'toy'\ntol = tolerances(name)"), TOY_COURSE)
    with pytest.raises(ConfigError, match=r"no master notebook .*nope/nope\.ipynb"):
        bake_tolerances(_nb("tol = tolerances('nope')"), TOY_COURSE)


def test_master_secrets_separate_solution_hidden_and_public():
    secrets, public = master_secrets(TOY_MASTER)
    kinds = set(secrets.values())
    assert {"solution code of q1", "solution code of q2", "solution code of q3",
            "hidden test of q1", "hidden test of q2"} <= kinds
    assert "clipped_reference=np.maximum(np.asarray(x,dtype=float),0.0)" in secrets
    assert "sum(range(1,11))" in secrets
    assert "deftest_relu_public(relu):" in public and "deftest_relu_public(relu):" not in secrets


def test_scan_release_finds_reformatted_hidden_test(tmp_path):
    # otter re-formats hidden tests with ast.unparse (single quotes): still found
    (tmp_path / "notes.md").write_text("def test_mean_square_hidden(mean_square):\n"
                                       "    assert abs(mean_square(np.arange(4.0)) - 3.5) <= tol['atol'], "
                                       "'mean_square([0, 1, 2, 3]) should be 3.5'\n")
    leaks = scan_release(tmp_path, TOY_MASTER, label="assignments/toy")
    assert {leak.kind for leak in leaks} == {"hidden test of q2"}
    assert all(leak.file == "assignments/toy/notes.md" for leak in leaks)


def test_runtime_sources_carry_the_packages_and_one_assignments_statistics():
    """A zip carries gradkit and gradkit_grader whole, plus its own assignment's statistics.py and the modules
    beside it (a1: runs.py) only."""
    a1 = assignment("a1_clipping", ROOT / "course")
    files = runtime_sources(a1)
    assert RUNTIME_PACKAGES == ("gradkit", "gradkit_grader")
    assert {path.split("/")[0] for path in files} == set(RUNTIME_PACKAGES)
    assert "gradkit/__init__.py" in files and "gradkit_grader/seeding.py" in files
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in files)
    assert [p for p in files if p.startswith("gradkit_grader/course/")] == [
        "gradkit_grader/course/__init__.py", "gradkit_grader/course/a1_clipping/runs.py",
        "gradkit_grader/course/a1_clipping/statistics.py"]
    assert files["gradkit_grader/course/a1_clipping/statistics.py"] == a1.statistics_file.read_bytes()
    toy = runtime_sources(assignment("toy", TOY_COURSE))  # the same packages, the toy's statistics instead
    assert toy == {**{p: b for p, b in files.items() if not p.startswith("gradkit_grader/course/a1_clipping/")},
                   "gradkit_grader/course/toy/statistics.py": (TOY_COURSE / "toy" / "statistics.py").read_bytes()}
