"""``gradkit report``: what a graded class did, as one self-contained HTML page and a JSON summary.

:func:`summarize` computes every number the page shows from :class:`~gradkit_tools.classdata.ClassData`
(scores per question, hidden cases by failure rate with their most frequent messages, partial-credit
bands, the TA review queue, code similarity, grading time and memory); :func:`render_html` lays them
out with matplotlib figures embedded as PNG (no script, no network); :func:`build_report` does both
for ``gradkit grade`` output folders.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

from gradkit_tools.classdata import SEED_NOTE, ClassData, ReportError, band_position, load_class
from gradkit_tools.similarity import THRESHOLD, notebook_code, similar_pairs

__all__ = ["summarize", "render_html", "build_report", "NEAR_BAND", "MAX_PAIRS_SHOWN"]

#: a partial-credit value this close to a band boundary (in bands) goes to the TA review queue
NEAR_BAND = 0.25
#: similar pairs listed on the page, most similar first (the JSON has all)
MAX_PAIRS_SHOWN = 50
_BAND_CASE = re.compile(r"^(?P<test>.+)_band_(?P<k>\d+)$")


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "mean": None, "median": None, "q1": None, "q3": None}
    a = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"n": int(a.size), "mean": round(float(a.mean()), 4), "median": round(float(med), 4),
            "q1": round(float(q1), 4), "q3": round(float(q3), 4)}


def _cases(data: ClassData) -> list[dict]:
    graded = [r["file"] for r in data.records if r["grading_status"] == "graded"]
    names = [c.name for c in data.cases] or sorted({c for o in data.outcomes.values() for c in o})
    question = {c.name: c.question for c in data.cases}
    out = []
    for name in names:
        seen = [data.outcomes[f][name] for f in graded if name in data.outcomes[f]]
        failed = [m for m in seen if m is not None]
        messages = Counter(SEED_NOTE.sub("", m).strip() for m in failed)
        out.append({"case": name, "question": question.get(name, name.split(" - ")[0]), "runs": len(seen),
                    "failed": len(failed), "rate": round(len(failed) / len(seen), 4) if seen else 0.0,
                    "messages": [[m, n] for m, n in messages.most_common(3)]})
    return sorted(out, key=lambda c: (-c["rate"], -c["failed"], c["case"]))


def _bands(data: ClassData) -> tuple[dict, list[dict]]:
    tests: dict[str, list[str]] = {}
    for c in data.cases:
        m = _BAND_CASE.match(c.name)
        if m:
            tests.setdefault(m.group("test"), []).append(c.name)
    counts, near = {}, []
    for test, cases in sorted(tests.items()):
        steps = len(cases)
        hist = [0] * (steps + 1)
        for r in data.records:
            got = data.outcomes.get(r["file"], {})
            if r["grading_status"] != "graded" or not all(c in got for c in cases):
                continue
            passed = sum(got[c] is None for c in cases)
            hist[passed] += 1
            if passed < steps:
                pos = next((band_position(got[c]) for c in cases if got[c]), None)
                if pos is not None and 0 < pos < steps and abs(pos - round(pos)) < NEAR_BAND:
                    near.append({"file": r["file"], "test": test, "bands": f"{passed}/{steps}",
                                 "position": round(pos, 3)})
        counts[test] = hist
    return counts, near


def summarize(data: ClassData, *, similarity: bool = True, template: str = "", threshold: float = THRESHOLD) -> dict:
    """Every number of the report, as JSON-ready data."""
    graded = [r for r in data.records if r["grading_status"] == "graded"]
    scores = {q: _stats([r["scores"].get(q, 0.0) for r in graded]) for q in data.questions}
    scores["total"] = _stats([r["total_points_earned"] for r in graded])
    bands, near = _bands(data)
    queue = [{"file": r["file"], "status": r["grading_status"], "reason": r.get("reason", ""),
              "flags": r.get("flags", [])} for r in data.records if r["grading_status"] != "graded" or r.get("flags")]
    pairs = []
    if similarity:
        codes = {r["file"]: notebook_code(r["source"]) for r in data.records
                 if r.get("source") and Path(r["source"]).is_file()}
        try:
            pairs = [p.__dict__ for p in similar_pairs(codes, template, threshold=threshold)]
        except ImportError as exc:
            raise ReportError(str(exc)) from None
    time_mem = [{"file": r["file"], "seconds": r.get("seconds"), "peak_rss_mb": r.get("peak_rss_mb"),
                 "device": r.get("device", "")} for r in data.records]
    return {"assignment": data.assignment, "questions": data.questions, "possible": data.possible,
            "submissions": len(data.records), "graded": len(graded), "ungradable": len(data.records) - len(graded),
            "devices": data.devices, "scores": scores, "cases": _cases(data), "bands": bands,
            "review": {"flagged_or_ungradable": queue, "near_band_boundary": near},
            "similarity": {"threshold": threshold, "pairs": pairs},
            "time_memory": {"per_submission": time_mem,
                            "seconds": _stats([t["seconds"] for t in time_mem if t["seconds"] is not None]),
                            "peak_rss_mb": _stats([t["peak_rss_mb"] for t in time_mem if t["peak_rss_mb"]])}}


def _png(fig) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(data: ClassData, summary: dict) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graded = [r for r in data.records if r["grading_status"] == "graded"]
    panels = [*data.questions, "total"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.6), squeeze=False, sharey=True)
    for ax, q in zip(axes[0], panels):
        vals = [r["total_points_earned"] if q == "total" else r["scores"].get(q, 0.0) for r in graded]
        top = data.possible if q == "total" else data.questions[q]
        ax.hist(vals, bins=np.linspace(0, max(top, 1e-9), 11), color="#4c72b0", edgecolor="white")
        ax.set(title=f"{q} (of {top:g})", xlabel="points")
    axes[0][0].set_ylabel("submissions")
    figs = {"scores": _png(fig)}
    if summary["bands"]:
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(summary["bands"])))
        names = list(summary["bands"])
        left = np.zeros(len(names))
        steps = max(len(h) for h in summary["bands"].values())
        for k in range(steps):
            vals = np.array([h[k] if k < len(h) else 0 for h in summary["bands"].values()], dtype=float)
            ax.barh(names, vals, left=left, label=f"{k} band{'s' if k != 1 else ''}",
                    color=plt.cm.RdYlGn(k / max(steps - 1, 1)))
            left += vals
        ax.set_xlabel("submissions")
        ax.legend(fontsize="small", ncol=steps, loc="upper center", bbox_to_anchor=(0.5, -0.35 - 0.1 / len(names)))
        figs["bands"] = _png(fig)
    secs = [t["seconds"] for t in summary["time_memory"]["per_submission"] if t["seconds"] is not None]
    mem = [t["peak_rss_mb"] for t in summary["time_memory"]["per_submission"] if t["peak_rss_mb"]]
    fig, axes = plt.subplots(1, 2 if mem else 1, figsize=(9 if mem else 4.5, 2.6), squeeze=False)
    axes[0][0].hist(secs, bins=20, color="#55a868")
    axes[0][0].set(xlabel="grading time per submission (s)", ylabel="submissions")
    if mem:
        axes[0][1].hist(mem, bins=20, color="#c44e52")
        axes[0][1].set(xlabel="peak memory per submission (MB)")
    figs["time"] = _png(fig)
    return figs


def _esc(x) -> str:
    import html

    return html.escape(str(x), quote=True)


class _Raw(str):
    """Already-escaped HTML inside a table cell."""


def _table(head: list[str], rows: Iterable[list], empty: str = "none") -> str:
    rows = list(rows)
    if not rows:
        return f'<p class="empty">{_esc(empty)}</p>'
    h = "".join(f"<th>{_esc(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _esc(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def render_html(data: ClassData, summary: dict) -> str:
    """The report page: static HTML, figures inline, no script."""
    figs = _figures(data, summary)
    s = summary
    fmt = lambda v: "" if v is None else f"{v:g}"  # noqa: E731
    parts = [f"<h1>{_esc(s['assignment'])}: class report</h1>",
             f"<p>{s['submissions']} submissions: {s['graded']} graded, {s['ungradable']} ungradable. "
             f"Device: {_esc(', '.join(s['devices']))}.</p>",
             '<section id="scores"><h2>Scores</h2>',
             _table(["question", "points", "mean", "median", "quartile 1", "quartile 3", "graded"],
                    [[q, fmt(s["questions"].get(q, s["possible"])), fmt(v["mean"]), fmt(v["median"]), fmt(v["q1"]),
                      fmt(v["q3"]), v["n"]] for q, v in s["scores"].items()]),
             f'<img alt="score distributions" src="{figs["scores"]}"></section>',
             '<section id="cases"><h2>Hidden test cases by failure rate</h2>',
             _table(["case", "question", "failed", "rate", "most frequent messages"],
                    [[c["case"], c["question"], f"{c['failed']}/{c['runs']}", f"{100 * c['rate']:.0f}%",
                      _Raw("<br>".join(f"<b>{n}x</b> {_esc(m[:300])}" for m, n in c["messages"]))]
                     for c in s["cases"]]), "</section>",
             '<section id="bands"><h2>Partial-credit bands</h2>']
    if s["bands"]:
        steps = max(len(h) for h in s["bands"].values())
        parts += [_table(["banded test", *(f"{k} bands" for k in range(steps))],
                         [[t, *h] for t, h in s["bands"].items()]), f'<img alt="bands" src="{figs["bands"]}">']
    else:
        parts.append("<p>This assignment has no banded tests.</p>")
    rev = s["review"]
    parts += ["</section>", '<section id="review"><h2>TA review queue</h2>',
              _table(["submission", "status", "reason", "flags"],
                     [[r["file"], r["status"], r["reason"], "; ".join(r["flags"])]
                      for r in rev["flagged_or_ungradable"]]),
              f"<h3>Within {NEAR_BAND:g} band of a band boundary</h3>",
              _table(["submission", "banded test", "bands earned", "position (bands)"],
                     [[n["file"], n["test"], n["bands"], n["position"]] for n in rev["near_band_boundary"]]),
              "</section>", '<section id="similarity"><h2>Code similarity</h2>',
              f"<p>Pairs whose code beyond the student notebook overlaps by at least "
              f"{100 * s['similarity']['threshold']:.0f}% on one side (copydetect, 25-token fingerprints).</p>",
              _table(["submission A", "submission B", "share of A", "share of B", "copied code of A",
                      "copied code of B"],
                     [[p["a"], p["b"], f"{100 * p['share_a']:.0f}%", f"{100 * p['share_b']:.0f}%",
                       _Raw(f"<pre>{_esc(p['excerpt_a'])}</pre>"), _Raw(f"<pre>{_esc(p['excerpt_b'])}</pre>")]
                      for p in s["similarity"]["pairs"][:MAX_PAIRS_SHOWN]]),
              (f"<p>... and {len(s['similarity']['pairs']) - MAX_PAIRS_SHOWN} more pairs (all of them in --json).</p>"
               if len(s["similarity"]["pairs"]) > MAX_PAIRS_SHOWN else ""),
              "</section>", '<section id="time"><h2>Grading time and memory</h2>',
              _table(["", "mean", "median", "quartile 1", "quartile 3"],
                     [[k, fmt(v["mean"]), fmt(v["median"]), fmt(v["q1"]), fmt(v["q3"])]
                      for k, v in (("seconds", s["time_memory"]["seconds"]),
                                   ("peak memory (MB)", s["time_memory"]["peak_rss_mb"]))]),
              f'<img alt="grading time and memory" src="{figs["time"]}">',
              _table(["submission", "seconds", "peak memory (MB)", "device"],
                     [[t["file"], fmt(t["seconds"]), fmt(t["peak_rss_mb"]), t["device"]]
                      for t in s["time_memory"]["per_submission"]]), "</section>"]
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;font-size:13px}th{background:#eee}"
             "pre{white-space:pre-wrap;max-width:420px;margin:0}img{max-width:100%}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(s["assignment"])} report'
            f"</title><style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _template(data: ClassData, release: str | os.PathLike | None) -> str:
    path = Path(release) / data.assignment / f"{data.assignment}.ipynb" if release else None
    return notebook_code(path) if path and path.is_file() else ""


def build_report(folders: Iterable[str | os.PathLike], out: str | os.PathLike, *, json_out=None,
                 release: str | os.PathLike | None = "assignments", similarity: bool = True) -> dict:
    """Write the HTML report of ``gradkit grade`` output ``folders`` to ``out`` (and the summary to
    ``json_out``); ``release`` is the folder of student notebooks whose code is the template."""
    data = load_class(folders)
    summary = summarize(data, similarity=similarity, template=_template(data, release))
    Path(out).write_text(render_html(data, summary))
    if json_out:
        Path(json_out).write_text(json.dumps(summary, indent=1) + "\n")
    return summary
