"""The student package wheel: a byte-reproducible PEP 427 wheel of ``gradkit`` alone.

Students install the kit's student package with ``pip install gradkit-<version>-py3-none-any.whl``;
the grader and the tool chain (``gradkit_grader``, ``gradkit_tools``) never go into it.
``gradkit release`` builds the wheel with :func:`student_wheel` (:func:`build_wheel` on ``src/gradkit``), its
``Requires-Dist`` lines coming from :func:`student_requirements` (the project's dependencies that the student
package imports), and writes :func:`wheel_banner` next to it.

The wheel is written by hand rather than by a build backend so that two builds of the same sources
are byte-identical, wherever the sources lie: entries sorted by name (the ``.dist-info`` files after
the package, ``RECORD`` last), stored rather than deflated (the bytes do not depend on the zlib
build), fixed 1980-01-01 timestamps and ``0644`` permissions, only relative paths.
"""
from __future__ import annotations

import ast
import base64
import csv
import hashlib
import io
import os
import re
import sys
import tempfile
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Iterable, Sequence

from gradkit_tools.reproducible import zip_info

__all__ = ["PYPROJECT", "build_wheel", "student_requirements", "student_wheel", "wheel_banner"]

#: a source checkout's ``pyproject.toml``: the requirements of the student wheel and of the autograder zips
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

#: The one tag the student package has: pure Python 3.
TAG = "py3-none-any"
DEFAULT_SUMMARY = "gradkit student package: Keras 3 models, data, diagnostics and plots for the gradient assignments"

# PEP 440-ish. No '-' in the version: the wheel file name uses '-' to separate its fields.
_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*([a-z0-9.+]*)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.]+$")
_REQ_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalize(name: str) -> str:
    """PEP 503 normalized distribution name: lower case, runs of ``-_.`` replaced by one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _package_files(package_dir: Path) -> list[Path]:
    """The package's ``*.py`` files (and ``py.typed``), ``__pycache__`` skipped, sorted by relative path."""
    found = [p for p in package_dir.rglob("*")
             if p.is_file() and (p.suffix == ".py" or p.name == "py.typed")
             and "__pycache__" not in p.relative_to(package_dir).parts]
    return sorted(found, key=lambda p: p.relative_to(package_dir).as_posix())


def _imported_modules(package_dir: Path) -> set[str]:
    """Top-level names of the absolute, non-stdlib imports of the package (itself excluded)."""
    names: set[str] = set()
    for path in _package_files(package_dir):
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - {"__future__", package_dir.name} - set(sys.stdlib_module_names)


def student_requirements(package_dir: Path, pyproject: Path, extra_modules: Iterable[str] = ("otter",)) -> list[str]:
    """The dependencies of ``pyproject`` that the package in ``package_dir`` needs.

    Parameters
    ----------
    package_dir : Path
        The package folder (``src/gradkit``); every ``.py`` file under it is parsed with :mod:`ast`.
    pyproject : Path
        The ``pyproject.toml`` whose ``[project].dependencies`` are filtered.
    extra_modules : iterable of str
        Modules needed besides the package's own imports (the notebooks import ``otter``).

    Returns
    -------
    list of str
        The requirement strings, exactly as written and in the order of ``pyproject``, whose
        distribution provides an imported module (per :func:`importlib.metadata.packages_distributions`),
        or whose normalized name, less a ``-cpu``/``-gpu`` suffix, is an imported module's name (so that
        both ``tensorflow-cpu`` and ``tensorflow`` are kept for ``import tensorflow``). Modules imported
        that are not dependencies (optional backends such as ``jax``) are left out silently.
    """
    import tomllib  # Python >= 3.11

    package_dir, pyproject = Path(package_dir), Path(pyproject)
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"].get("dependencies", [])
    modules = _imported_modules(package_dir) | set(extra_modules)
    module_names = {_normalize(m) for m in modules}
    providers = packages_distributions()
    dists = {_normalize(d) for m in modules for d in providers.get(m, [])}
    kept = []
    for dep in deps:
        match = _REQ_NAME_RE.match(dep)
        if match is None:
            raise ValueError(f"{pyproject}: cannot read the distribution name of dependency {dep!r}")
        name = _normalize(match.group(1))
        if name in dists or re.sub(r"-(cpu|gpu)$", "", name) in module_names:
            kept.append(dep)
    return kept


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def build_wheel(package_dir: str | Path, out_dir: str | Path, *, version: str, requires: Sequence[str],
                summary: str = DEFAULT_SUMMARY, name: str = "gradkit") -> Path:
    """Write the byte-reproducible wheel ``<out_dir>/<name>-<version>-py3-none-any.whl`` of one package.

    Parameters
    ----------
    package_dir : str or Path
        The package folder (``src/gradkit``); it must hold an ``__init__.py``. Its ``*.py`` files
        (and ``py.typed``) are stored as ``<package_dir.name>/<relative path>``.
    out_dir : str or Path
        Where the wheel goes (created if missing); an existing wheel of the same name is replaced
        atomically.
    version : str
        The distribution version (``0.1.0``).
    requires : sequence of str
        The ``Requires-Dist`` lines, in this order (see :func:`student_requirements`).
    summary : str
        The one-line ``Summary`` of the metadata.
    name : str
        The distribution name.

    Returns
    -------
    Path
        The wheel written.

    Raises
    ------
    ValueError
        If ``package_dir`` has no ``__init__.py``, or ``version``, ``name``, ``summary`` or a
        requirement is not valid.
    """
    package_dir = Path(package_dir).resolve()
    if not (package_dir / "__init__.py").is_file():
        raise ValueError(f"{package_dir} is not a package: it has no __init__.py")
    if not _VERSION_RE.match(version):
        raise ValueError(f"invalid wheel version {version!r}: expected e.g. '0.1.0' (digits and dots, "
                         "then an optional suffix of lower-case letters, digits, '.', '+')")
    if not _NAME_RE.match(name):
        raise ValueError(f"invalid distribution name {name!r}: only letters, digits, '_' and '.'")
    for field, value in [("summary", summary), *(("requirement", r) for r in requires)]:
        if not value.strip() or "\n" in value or "\r" in value:
            raise ValueError(f"invalid {field} {value!r}: it must be one non-empty line")

    dist_info = f"{name}-{version}.dist-info"
    metadata = "".join([
        "Metadata-Version: 2.1\n", f"Name: {name}\n", f"Version: {version}\n", f"Summary: {summary}\n",
        "Requires-Python: >=3.10\n", *(f"Requires-Dist: {r}\n" for r in requires)])
    wheel_file = (f"Wheel-Version: 1.0\nGenerator: {__name__}\nRoot-Is-Purelib: true\nTag: {TAG}\n")
    entries = [(f"{package_dir.name}/{p.relative_to(package_dir).as_posix()}", p.read_bytes())
               for p in _package_files(package_dir)]
    entries += [(f"{dist_info}/METADATA", metadata.encode("utf-8")), (f"{dist_info}/WHEEL", wheel_file.encode())]
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    writer.writerows((arcname, _record_hash(data), len(data)) for arcname, data in entries)
    writer.writerow((f"{dist_info}/RECORD", "", ""))
    entries.append((f"{dist_info}/RECORD", record.getvalue().encode("utf-8")))

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}-{version}-{TAG}.whl"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
            for arcname, data in entries:
                zf.writestr(zip_info(arcname), data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def student_wheel(out_dir: Path) -> Path:
    """Build the student package's wheel (``gradkit`` only, its imports' requirements) into ``out_dir``."""
    import gradkit

    package = Path(gradkit.__file__).resolve().parent
    return build_wheel(package, out_dir, version=gradkit.__version__,
                       requires=student_requirements(package, PYPROJECT))


def wheel_banner(wheel: str) -> str:
    """The banner of the student releases' folder, which holds the wheel ``wheel``."""
    return ("# Generated files: do not edit by hand\n\n"
            f"`{wheel}` is the student package, built from `src/gradkit/` (the notebooks' library and the\n"
            "guards of their public tests; no answers, no hidden tests, no tool chain). Students install it\n"
            f"into the Python their Jupyter runs: `pip install {wheel}`. Each folder here is one\n"
            "assignment's student release, with a banner of its own.\n")
