"""The student package wheel: byte-reproducible, complete, installable, gradkit alone, the right requirements."""
from __future__ import annotations

import ast
import base64
import csv
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from gradkit_tools.wheel import build_wheel, student_requirements

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "gradkit"
PYPROJECT = ROOT / "pyproject.toml"
VERSION = "0.1.0"
DIST_INFO = f"gradkit-{VERSION}.dist-info"


@cache
def _deps() -> list[str]:
    """``[project].dependencies`` of pyproject.toml."""
    import tomllib  # Python >= 3.11

    return tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dep_name(dep: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9._-]+", dep.strip()).group(0))


def _dep(name: str) -> str:
    """The one dependency line of pyproject.toml for distribution ``name``."""
    (line,) = [d for d in _deps() if _dep_name(d) == _norm(name)]
    return line


def _sources(package: Path) -> list[str]:
    return sorted(p.relative_to(package).as_posix() for p in package.rglob("*.py")
                  if "__pycache__" not in p.relative_to(package).parts)


def _imports(package: Path) -> set[str]:
    """Top-level names of every absolute import in the package's sources."""
    names = set()
    for rel in _sources(package):
        for node in ast.walk(ast.parse((package / rel).read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.partition(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.add(node.module.partition(".")[0])
    return names


@pytest.fixture(scope="module")
def requires() -> list[str]:
    return student_requirements(PACKAGE, PYPROJECT)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, requires) -> Path:
    return build_wheel(PACKAGE, tmp_path_factory.mktemp("wheel"), version=VERSION, requires=requires)


def test_wheel_is_byte_reproducible_from_anywhere(wheel, requires, tmp_path):
    assert wheel.name == f"gradkit-{VERSION}-py3-none-any.whl"
    again = build_wheel(PACKAGE, tmp_path / "again", version=VERSION, requires=requires)
    copy = shutil.copytree(PACKAGE, tmp_path / "elsewhere" / "gradkit", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "stray.py").write_text("x = 1\n")  # never packaged
    moved = build_wheel(copy, tmp_path / "moved", version=VERSION, requires=requires)
    data = wheel.read_bytes()
    assert again.read_bytes() == data
    assert moved.read_bytes() == data
    for path in (ROOT, tmp_path, wheel.parent):
        assert str(path).encode() not in data
    assert sorted(p.name for p in (tmp_path / "moved").iterdir()) == [wheel.name]  # no temp file left behind


def test_wheel_holds_the_sources_and_a_valid_record(wheel, requires):
    with zipfile.ZipFile(wheel) as zf:
        infos = zf.infolist()
        contents = {i.filename: zf.read(i) for i in infos}
    names = [i.filename for i in infos]
    dist = [f"{DIST_INFO}/METADATA", f"{DIST_INFO}/WHEEL", f"{DIST_INFO}/RECORD"]
    assert names == ["gradkit/" + rel for rel in _sources(PACKAGE)] + dist
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert (info.create_system, info.external_attr) == (3, 0o100644 << 16)
        assert not info.is_dir()
    for rel in _sources(PACKAGE):
        assert contents["gradkit/" + rel] == (PACKAGE / rel).read_bytes()

    rows = list(csv.reader(contents[f"{DIST_INFO}/RECORD"].decode().splitlines()))
    assert [r[0] for r in rows] == names
    assert rows[-1] == [f"{DIST_INFO}/RECORD", "", ""]
    for path, digest, size in rows[:-1]:
        data = contents[path]
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert (digest, int(size)) == (f"sha256={expected}", len(data)), path

    metadata = contents[f"{DIST_INFO}/METADATA"].decode().splitlines()
    assert metadata[:5] == ["Metadata-Version: 2.1", "Name: gradkit", f"Version: {VERSION}",
                            metadata[3], "Requires-Python: >=3.10"]
    assert metadata[3].startswith("Summary: ") and len(metadata[3]) > len("Summary: ")
    assert metadata[5:] == [f"Requires-Dist: {r}" for r in requires]
    assert contents[f"{DIST_INFO}/WHEEL"].decode().splitlines() == [
        "Wheel-Version: 1.0", "Generator: gradkit_tools.wheel", "Root-Is-Purelib: true", "Tag: py3-none-any"]


def test_wheel_ships_gradkit_alone(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert {n.split("/")[0] for n in names} == {"gradkit", DIST_INFO}
    assert not [n for n in names if "gradkit_grader" in n or "gradkit_tools" in n]
    assert not [n for n in names if not (n.endswith(".py") or n.startswith(DIST_INFO + "/"))]


def test_wheel_installs_with_pip(wheel, requires, tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
                          "--target", str(site), str(wheel)], capture_output=True, text=True, env=env, timeout=120)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert (site / "gradkit" / "__init__.py").read_bytes() == (PACKAGE / "__init__.py").read_bytes()
    code = ("import gradkit, importlib.metadata as m; print(gradkit.__file__); "
            "print(m.version('gradkit')); print(m.requires('gradkit'))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(site)}, timeout=120)
    assert run.returncode == 0, run.stderr
    path, version, reqs = run.stdout.splitlines()
    assert Path(path).resolve().is_relative_to(site.resolve())
    assert version == VERSION
    assert ast.literal_eval(reqs) == requires


def test_student_requirements_are_the_imported_dependencies(requires):
    imported = _imports(PACKAGE) | {"otter"}
    for name in ("keras", "numpy", "matplotlib", "otter-grader", "tensorflow-cpu", "tensorflow"):
        assert _dep(name) in requires
    assert requires == [d for d in _deps() if d in requires]  # pyproject's order, its exact strings
    providers = packages_distributions()
    for dep in requires:  # each one is there because of a module the student package imports
        name = _dep_name(dep)
        assert (re.sub(r"-(cpu|gpu)$", "", name) in {_norm(m) for m in imported}
                or any(name in {_norm(d) for d in providers.get(m, [])} for m in imported)), dep
    assert "psutil" not in imported
    assert _dep("psutil") not in requires
    for name, module in [("nbclient", "nbclient"), ("nbformat", "nbformat"), ("pyyaml", "yaml"),
                         ("ipykernel", "ipykernel")]:
        if module not in imported:
            assert _dep(name) not in requires


def test_student_requirements_of_a_small_package(tmp_path):
    pkg = tmp_path / "mypkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from __future__ import annotations\n"
                                     "import os, json, dataclasses\nfrom . import sub\n")
    (pkg / "sub" / "__init__.py").write_text("import tensorflow.keras as tk\nfrom mypkg.sub import x\n"
                                             "try:\n    import jax\nexcept ImportError:\n    jax = None\n")
    (pkg / "sub" / "x.py").write_text("from ..sub import y\nfrom .yaml import load\nfrom numpy.linalg import norm\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "z.py").write_text("import psutil\n")  # not a source
    pyproject = tmp_path / "pyproject.toml"
    deps = ["psutil>=5",  # imported only by a stray file in __pycache__
            "TensorFlow_CPU~=2.0; sys_platform == 'linux'", "mypkg", "tensorflow-gpu", "numpy>=1.26,<3",
            "tensorflow-text", "otter-grader==7.0.0",
            "dataclasses; python_version < '3.7'",  # a backport of a stdlib module
            "yaml"]  # the name of a module imported relatively (mypkg/sub/yaml.py)
    pyproject.write_text(f"[project]\nname = 'mypkg'\ndependencies = {deps!r}\n")
    assert student_requirements(pkg, pyproject, extra_modules=()) == [deps[1], deps[3], deps[4]]
    if "otter-grader" in {_norm(d) for d in packages_distributions().get("otter", [])}:
        assert student_requirements(pkg, pyproject) == [deps[1], deps[3], deps[4], deps[6]]


def test_bad_inputs_are_refused(tmp_path):
    empty = tmp_path / "notapackage"
    empty.mkdir()
    (empty / "mod.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match=re.escape(str(empty))):
        build_wheel(empty, tmp_path / "out", version=VERSION, requires=[])
    for version in ("v1.0", "1.0 beta", "1.0-1", ""):
        with pytest.raises(ValueError, match=re.escape(repr(version))):
            build_wheel(PACKAGE, tmp_path / "out", version=version, requires=[])
    with pytest.raises(ValueError, match="grad-kit"):
        build_wheel(PACKAGE, tmp_path / "out", version=VERSION, requires=[], name="grad-kit")
    with pytest.raises(ValueError, match="requirement"):
        build_wheel(PACKAGE, tmp_path / "out", version=VERSION, requires=["numpy\nName: evil"])
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
