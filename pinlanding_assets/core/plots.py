"""Pictures of the model's held-out quality, as PNG bytes (matplotlib, no display).

* precision–recall curves per key: "assign the key's top value when its calibrated
  probability ≥ t", swept over t, on held-out products with a catalog label for the key;
  the chosen threshold of each key is marked.
* confusion summary: for the keys with many values (product type, colour), the most
  frequent true values against the predicted top-1 value, row-normalized.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers and in Dagster steps
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from .evaluation import precision_recall_curve, top1_confusions  # noqa: E402
from .training import AttributeSpace  # noqa: E402


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def precision_recall_png(probs: np.ndarray, truth: np.ndarray, space: AttributeSpace, thresholds: dict[str, float]) -> bytes:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for key, sl in space.key_slices.items():
        cut, precision, recall = precision_recall_curve(probs, truth, sl, space.assignable)
        if len(cut) == 0:
            continue
        line = ax.plot(recall, precision, label=f"{key} (n={len(cut)})")[0]
        at = np.searchsorted(-cut, -thresholds.get(key, 1.0), side="right") - 1
        if at >= 0:
            ax.plot(recall[at], precision[at], "o", color=line.get_color())
    ax.set_xlabel("recall (share of products given their true value)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title("Held-out precision–recall per key (dot: chosen threshold)")
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def confusion_png(probs: np.ndarray, truth: np.ndarray, space: AttributeSpace, keys: tuple[str, ...] = ("product_type", "color"), top_n: int = 12) -> bytes:
    keys = tuple(k for k in keys if k in space.key_slices) or tuple(space.key_slices)[:2]
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pairs = top1_confusions(probs, truth, space.attributes, key, space.key_slices[key])
        totals = pairs.group_by("true").agg(pl.col("count").sum()).sort(["count", "true"], descending=[True, False])
        values = totals.get_column("true").head(top_n).to_list()
        columns = values + ["other"]
        matrix = np.zeros((len(values), len(columns)))
        for true, predicted, count in pairs.iter_rows():
            if true in values:
                matrix[values.index(true), columns.index(predicted) if predicted in values else -1] += count
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(columns)), columns, rotation=70, fontsize=7)
        ax.set_yticks(range(len(values)), [f"{v} ({int(n)})" for v, n in zip(values, matrix.sum(axis=1))], fontsize=7)
        for i in range(len(values)):
            for j in range(len(columns)):
                if shares[i, j] >= 0.05:
                    ax.text(j, i, f"{shares[i, j]:.2f}", ha="center", va="center", fontsize=6, color="white" if shares[i, j] > 0.6 else "black")
        ax.set_xlabel("predicted top-1")
        ax.set_ylabel("true value (held-out count)")
        ax.set_title(f"{key}: top-{len(values)} true values")
    fig.suptitle("Held-out confusion summary (row-normalized)")
    return _png(fig)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that embeds the PNG inline (Dagster renders it in the asset's metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def compared_calls(curves: dict[str, list[tuple[int, float, float]]]) -> set[int]:
    """The calls every curve was measured at: where `quality_vs_calls_panels_png` writes the
    values (where the methods are compared; a method measured after many small rounds would
    otherwise crowd the panel with labels)."""
    calls = [{int(c) for c, _, _ in points} for points in curves.values()]
    return set.intersection(*calls) if calls else set()


def quality_vs_calls_panels_png(panels: dict[str, dict[str, list[tuple[int, float, float]]]], title: str) -> bytes:
    """One panel per quality measure (its ylabel the key of `panels`), one line per sampling
    method: the mean over seeds of held-out quality against the teacher calls, with a band of
    one standard deviation over seeds (points: (calls, mean, std))."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.3), squeeze=False)
    for ax, (ylabel, curves) in zip(axes[0], panels.items()):
        shared = compared_calls(curves)
        for name, points in curves.items():
            calls, mean, std = (np.asarray(v, dtype=float) for v in zip(*sorted(points)))
            (line,) = ax.plot(calls, mean, "o-", label=name)
            ax.fill_between(calls, mean - std, mean + std, color=line.get_color(), alpha=0.15)
            for x, y in zip(calls, mean):
                if int(x) in shared:
                    ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("teacher calls (distinct products labeled, log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)
