"""Code similarity between submissions, with copydetect (winnowed k-gram fingerprints, as MOSS).

Each submission's code is its notebook's code cells; the student release notebook's code is
boilerplate, so the template, the imports and the checks every student shares do not count.
copydetect tokenises the code (names and literals become placeholders), so renaming variables
does not hide a copy. A pair is listed when the copied share of either side reaches the
threshold, with the copied lines of both sides.
"""
from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

__all__ = ["Pair", "notebook_code", "similar_pairs", "K", "WINDOW", "THRESHOLD"]

#: copydetect's defaults for short programs: 25-token k-grams, winnowing window 1 (every k-gram)
K, WINDOW = 25, 1
#: share of a submission's own (non-template) tokens found in the other one
THRESHOLD = 0.8


@dataclass(frozen=True)
class Pair:
    """Two submissions whose code overlaps: shares of each side's tokens and the copied lines."""

    a: str
    b: str
    share_a: float
    share_b: float
    excerpt_a: str
    excerpt_b: str


def notebook_code(path: str | Path) -> str:
    """The code cells of a notebook (``.ipynb``, or the notebook inside an exported ``.zip``), joined;
    empty when the file is not a readable notebook."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith(".ipynb") and not n.startswith("__MACOSX/")]
                data = zf.read(names[0]) if names else b"{}"
        else:
            data = path.read_bytes()
        nb = json.loads(data.decode("utf-8-sig"))
        cells = nb.get("cells", []) if isinstance(nb, dict) else []
        return "\n\n".join("".join(c.get("source") or "") if isinstance(c.get("source"), list)
                           else str(c.get("source") or "") for c in cells
                           if isinstance(c, dict) and c.get("cell_type") == "code")
    except (OSError, ValueError, zipfile.BadZipFile, IndexError, AttributeError):
        return ""


def _excerpt(code: str, slices) -> str:
    lines = []
    for start, end in zip(*slices):
        lines.append(code[int(start):int(end)].strip())
    text = "\n...\n".join(s for s in lines if s)
    return text[:1500]


def _candidates(prints: dict, threshold: float) -> list[tuple[str, str]]:
    """Pairs sharing enough fingerprints to possibly reach ``threshold``, found through an index of
    fingerprint -> submissions (the class's pairs are never all compared token by token)."""
    index: dict[int, list[str]] = {}
    for name in sorted(prints):
        for h in prints[name].hashes:
            index.setdefault(h, []).append(name)
    shared: Counter = Counter()
    for names in index.values():
        if len(names) > 1:
            shared.update(combinations(names, 2))
    # with window 1 every k-gram is a fingerprint, and a copied run of tokens is a run of shared
    # k-grams: a side whose share reaches the threshold shares about that share of its fingerprints;
    # half of it is a loose floor (runs shorter than k, repeated k-grams)
    return sorted((a, b) for (a, b), n in shared.items()
                  if n >= 0.5 * threshold * min(len(prints[a].hashes), len(prints[b].hashes)))


def similar_pairs(codes: dict[str, str], template: str = "", *, threshold: float = THRESHOLD) -> list[Pair]:
    """Pairs of ``codes`` (name -> code) whose overlap beyond ``template`` reaches ``threshold`` on
    either side, most similar first. Submissions without code of their own are skipped."""
    try:
        from copydetect import CodeFingerprint, compare_files
    except ImportError:
        raise ImportError("code similarity needs copydetect: pip install 'gradkit[report]' "
                          "(or skip it: gradkit report --no-similarity)") from None

    def fingerprint(name: str, code: str, boilerplate=None):
        return CodeFingerprint(f"{name}.py", K, WINDOW, boilerplate=boilerplate, language="python",
                               fp=io.StringIO(code))

    boiler = list(fingerprint("template", template).hashes) if template.strip() else []
    prints = {}
    for name, code in sorted(codes.items()):
        if code.strip():
            fp = fingerprint(name, code, boiler)
            if fp.hashes:
                prints[name] = fp
    pairs = []
    for a, b in _candidates(prints, threshold):
        _, (sa, sb), (slices_a, slices_b) = compare_files(prints[a], prints[b])
        if max(sa, sb) >= threshold:
            pairs.append(Pair(a, b, round(float(sa), 3), round(float(sb), 3),
                              _excerpt(prints[a].raw_code, slices_a), _excerpt(prints[b].raw_code, slices_b)))
    return sorted(pairs, key=lambda p: (-max(p.share_a, p.share_b), p.a, p.b))
