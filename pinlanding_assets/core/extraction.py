"""Attribute extraction: which products are labeled, and how.

In the paper a VLM reads each sampled product (image + metadata) and proposes key-value
attributes. `AttributeExtractor` is that step's interface; `OfflineExtractor` is the offline
stand-in used when no VLM endpoint is configured: it reads the catalog's own metadata
columns, a lexicon over the title, and the product's dominant colour from its pixels.
Output rows: (product_id, key, value, source).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import polars as pl
from PIL import Image

ATTRIBUTE_SCHEMA = {"product_id": pl.String, "key": pl.String, "value": pl.String, "source": pl.String}


@dataclass(frozen=True)
class SampleSpec:
    """How many products of a shard the (expensive) extractor labels."""

    share: float = 0.2
    min_count: int = 50
    max_count: int | None = None
    seed: int = 0

    def size_for(self, n_products: int) -> int:
        size = max(round(n_products * self.share), self.min_count)
        if self.max_count is not None:
            size = min(size, self.max_count)
        return min(size, n_products)


def select_sample(products: pl.DataFrame, spec: SampleSpec) -> pl.DataFrame:
    """A deterministic sample: products ranked by a seeded hash of their id.

    The same product stays in the sample across runs (so cached VLM answers are reused) and
    adding products to a shard does not reshuffle who was sampled.
    """
    size = spec.size_for(products.height)
    ranked = products.with_columns(
        pl.col("product_id")
        .map_elements(lambda pid: _stable_hash(f"{spec.seed}:{pid}"), return_dtype=pl.UInt64)
        .alias("_rank")
    )
    return ranked.sort("_rank").head(size).drop("_rank")


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass
class ExtractionResult:
    attributes: pl.DataFrame  # ATTRIBUTE_SCHEMA
    quarantine: pl.DataFrame  # product_id, reason, detail
    stats: dict[str, float | int | str] = field(default_factory=dict)


class AttributeExtractor(Protocol):
    name: str

    def extract(self, products: pl.DataFrame) -> ExtractionResult: ...


# -- the offline stand-in ----------------------------------------------------------------

TITLE_LEXICON: dict[str, list[str]] = {
    "pattern": ["striped", "checked", "printed", "solid", "floral", "polka dot", "self design", "graphic", "colourblocked", "embroidered"],
    "material": ["cotton", "denim", "leather", "linen", "silk", "wool", "polyester", "canvas", "suede", "chiffon", "georgette", "satin"],
    "style": ["slim fit", "regular fit", "round neck", "v neck", "polo", "hooded", "sleeveless", "full sleeve", "half sleeve", "skinny", "flip flop"],
    "color": ["navy blue", "black", "white", "blue", "red", "green", "grey", "pink", "yellow", "brown", "purple", "orange", "beige", "maroon", "olive", "silver", "gold"],
}

# Reference colours for naming a measured pixel colour (offline stand-in for the VLM's eye).
NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25), "white": (240, 240, 240), "grey": (128, 128, 128),
    "navy blue": (30, 40, 90), "blue": (45, 95, 200), "red": (200, 35, 40),
    "green": (45, 135, 65), "yellow": (230, 200, 50), "pink": (235, 135, 170),
    "brown": (110, 72, 40), "purple": (110, 50, 140), "orange": (235, 120, 40),
    "beige": (215, 195, 160), "maroon": (120, 25, 40),
}


def dominant_color(image_path: str) -> str | None:
    """Name of the product's dominant colour, ignoring the near-white background."""
    with Image.open(image_path) as img:
        img.draft("RGB", (64, 64))
        pixels = np.asarray(img.convert("RGB").resize((30, 40)), dtype=np.int16).reshape(-1, 3)
    foreground = pixels[(pixels < 235).any(axis=1)]
    if len(foreground) < 20:  # nothing but background: a white product
        return "white" if len(pixels) else None
    median = np.median(foreground, axis=0)
    names = list(NAMED_COLORS)
    refs = np.array([NAMED_COLORS[n] for n in names], dtype=np.float32)
    return names[int(np.argmin(((refs - median) ** 2).sum(axis=1)))]


def title_attributes(title: str) -> list[tuple[str, str]]:
    text = " " + re.sub(r"[^a-z0-9]+", " ", title.lower()) + " "
    found: list[tuple[str, str]] = []
    for key, phrases in TITLE_LEXICON.items():
        for phrase in sorted(phrases, key=len, reverse=True):
            if f" {phrase} " in text:
                found.append((key, phrase))
                text = text.replace(f" {phrase} ", " ")  # "navy blue" must not also yield "blue"
    return found


class OfflineExtractor:
    """Attributes from catalog metadata, the title lexicon and the pixels; no network."""

    name = "offline"

    def extract(self, products: pl.DataFrame) -> ExtractionResult:
        label_cols = [c for c in products.columns if c.startswith("label_")]
        rows: list[dict] = []
        quarantine: list[dict] = []
        for product in products.iter_rows(named=True):
            try:
                rows.extend(self._extract_one(product, label_cols))
            except Exception as exc:  # one bad product never stops the shard
                quarantine.append(
                    {"product_id": product["product_id"], "reason": "extraction failed", "detail": f"{type(exc).__name__}: {exc}"[:300]}
                )
        attributes = pl.DataFrame(rows, schema=ATTRIBUTE_SCHEMA).unique(["product_id", "key", "value"], keep="first", maintain_order=True)
        return ExtractionResult(
            attributes=attributes,
            quarantine=pl.DataFrame(quarantine, schema={"product_id": pl.String, "reason": pl.String, "detail": pl.String}),
            stats={"extractor": self.name, "calls_made": 0, "cache_hits": 0},
        )

    def _extract_one(self, product: dict, label_cols: list[str]) -> list[dict]:
        pid = product["product_id"]
        found: dict[tuple[str, str], str] = {}
        for col in label_cols:
            if product[col]:
                found[(col.removeprefix("label_"), product[col])] = f"catalog:{col.removeprefix('label_')}"
        keys_from_catalog = {key for key, _ in found}
        for key, value in title_attributes(product["title"]):
            if key not in keys_from_catalog:
                found.setdefault((key, value), "title")
        if "color" not in {key for key, _ in found}:
            color = dominant_color(product["image_path"])
            if color:
                found[("color", color)] = "pixels"
        return [{"product_id": pid, "key": k, "value": v, "source": s} for (k, v), s in found.items()]
