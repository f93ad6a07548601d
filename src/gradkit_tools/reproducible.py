"""Deterministic notebooks, zips and folder comparison for ``gradkit release``.

``otter assign`` is not byte-reproducible as shipped (field guide section 2):
the cells it creates get random ids, zip entries carry the time of the run
and follow directory-listing order. The helpers here rewrite its output so
that two releases of the same sources are byte-identical:

* :func:`normalize_notebook` -- content-derived cell ids, outputs and
  execution counts cleared, volatile metadata dropped, kernelspec ``python3``;
* :func:`write_zip` -- entries sorted by name, stored (not deflated, so the
  bytes do not depend on the zlib build), fixed 1980-01-01 mtimes, fixed
  permissions (``0755`` for the two scripts Gradescope executes);
* :func:`diff_trees` -- which files differ, are missing or are extra.
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import nbformat

__all__ = ["PYTHON3_KERNELSPEC", "normalize_notebook", "write_zip", "zip_info", "read_zip",
           "sha256_bytes", "sha256_file", "tree_files", "diff_trees", "iter_strings"]

#: The kernelspec every generated notebook carries: ``otter run`` launches the
#: kernel named in the notebook (field guide section 4), and ``python3`` is the
#: one kernel every Jupyter installation with ipykernel provides.
PYTHON3_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

#: Fixed timestamp of every zip entry (the earliest a zip can store).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
#: Zip entries that Gradescope / ``otter grade`` execute.
EXECUTABLE_ENTRIES = frozenset({"run_autograder", "setup.sh"})

# Notebook-level metadata worth keeping; everything else (widgets, colab,
# vscode, papermill, toc ...) depends on the editor that last saved the master.
_KEEP_NB_METADATA = ("kernelspec", "language_info", "otter")
# Cell-level metadata that records when or how a cell was last viewed or run.
_VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled", "trusted",
                           "papermill", "vscode", "pycharm")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of the file at ``path``."""
    return sha256_bytes(Path(path).read_bytes())


def normalize_notebook(text: str, *, clear_outputs: bool = True) -> str:
    """Return a canonical serialisation of the notebook ``text``.

    Parameters
    ----------
    text : str
        Notebook JSON as written by otter (or any nbformat 4 notebook).
    clear_outputs : bool
        Drop outputs and execution counts of code cells. Student releases
        always do: outputs of a master may show solution values.

    Returns
    -------
    str
        Notebook JSON; equal inputs (up to cell ids, volatile metadata and
        outputs) give equal bytes. Cell ids are ``c<index>-<sha1 prefix>`` of
        the index, cell type and source (the field guide recipe).
    """
    nb = nbformat.reads(text, as_version=4)
    meta = {k: nb.metadata[k] for k in _KEEP_NB_METADATA if k in nb.metadata}
    meta["kernelspec"] = dict(PYTHON3_KERNELSPEC)
    lang = dict(meta.get("language_info", {}))
    lang.pop("version", None)  # the Python version of whoever ran the master
    meta["language_info"] = lang or {"name": "python"}
    nb.metadata = nbformat.from_dict(meta)
    for i, cell in enumerate(nb.cells):
        digest = hashlib.sha1(f"{i}\0{cell.cell_type}\0{cell.source}".encode()).hexdigest()[:8]
        cell["id"] = f"c{i:03d}-{digest}"
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code" and clear_outputs:
            cell.outputs = []
            cell.execution_count = None
    out = nbformat.writes(nb, version=4)
    return out if out.endswith("\n") else out + "\n"


def read_zip(path: str | Path) -> dict[str, bytes]:
    """All file entries of the zip at ``path`` as ``{name: bytes}`` (directories skipped)."""
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


def write_zip(entries: Mapping[str, bytes], path: str | Path) -> None:
    """Write ``entries`` to ``path`` as a byte-reproducible zip.

    Entries are sorted by name, stored uncompressed with mtime 1980-01-01,
    Unix permissions ``0644`` (``0755`` for ``run_autograder`` and
    ``setup.sh``) and no directory entries.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(entries):
            zf.writestr(zip_info(name, executable=name in EXECUTABLE_ENTRIES), entries[name])


def zip_info(name: str, *, executable: bool = False) -> zipfile.ZipInfo:
    """The reproducible header of zip entry ``name``: stored, mtime 1980-01-01, Unix mode
    ``0644`` (``0755`` when ``executable``)."""
    info = zipfile.ZipInfo(name, ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3  # Unix, so external_attr holds a mode
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    return info


def tree_files(root: str | Path) -> dict[str, Path]:
    """Files under ``root`` as ``{posix relative path: path}`` (empty if ``root`` is absent)."""
    root = Path(root)
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def _zip_detail(expected: Path, actual: Path) -> str:
    try:
        a, b = read_zip(expected), read_zip(actual)
    except zipfile.BadZipFile:
        return "not a readable zip"
    changed = sorted(n for n in set(a) & set(b) if a[n] != b[n])
    parts = []
    if changed:
        parts.append("entries changed: " + ", ".join(changed))
    if set(a) - set(b):
        parts.append("entries missing: " + ", ".join(sorted(set(a) - set(b))))
    if set(b) - set(a):
        parts.append("entries extra: " + ", ".join(sorted(set(b) - set(a))))
    return "; ".join(parts) or "same entries, different zip layout (timestamps/permissions/order)"


def diff_trees(expected: str | Path, actual: str | Path, *, label: str | None = None) -> list[str]:
    """Compare the folder ``actual`` (committed) with ``expected`` (freshly generated).

    Returns
    -------
    list of str
        One line per difference, ``"differs: <label>/<file> (...)"``,
        ``"missing: ..."`` (generated but not committed) or ``"extra: ..."``
        (committed but no longer generated); empty when identical.
    """
    label = label or str(actual)
    exp, act = tree_files(expected), tree_files(actual)
    out: list[str] = []
    for rel in sorted(set(exp) | set(act)):
        where = f"{label}/{rel}"
        if rel not in act:
            out.append(f"missing: {where}")
        elif rel not in exp:
            out.append(f"extra: {where}")
        elif exp[rel].read_bytes() != act[rel].read_bytes():
            detail = _zip_detail(exp[rel], act[rel]) if rel.endswith(".zip") else _first_diff_line(exp[rel], act[rel])
            out.append(f"differs: {where} ({detail})")
    return out


def _first_diff_line(expected: Path, actual: Path) -> str:
    try:
        a = expected.read_text().splitlines()
        b = actual.read_text().splitlines()
    except UnicodeDecodeError:
        return "binary content differs"
    for i, (x, y) in enumerate(zip(a, b), start=1):
        if x != y:
            return f"first difference at line {i}: expected {x.strip()[:60]!r}, found {y.strip()[:60]!r}"
    return f"expected {len(a)} lines, found {len(b)}"


def iter_strings(node: object) -> Iterable[str]:
    """Every string inside a JSON-like structure (keys excluded), depth first."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from iter_strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from iter_strings(value)
