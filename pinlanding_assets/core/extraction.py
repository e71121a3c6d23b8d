"""Attribute extraction: which products are labeled, and how.

In the paper a VLM reads each sampled product (image + metadata) and proposes key-value
attributes. `AttributeExtractor` is that step's interface; `OfflineExtractor` is the offline
stand-in used when no VLM endpoint is configured (`vlm_extraction.VLMExtractor` is the
real one): same output schema, from the catalog's own metadata columns, a lexicon over the
title (colors, patterns, materials, fit, neckline, sleeve, length, style, gender), and the
product's dominant colour measured from its pixels, ignoring the background.
Output rows: (product_id, key, value, source, prompt_version).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import polars as pl
from PIL import Image

ATTRIBUTE_SCHEMA = {"product_id": pl.String, "key": pl.String, "value": pl.String, "source": pl.String, "prompt_version": pl.String}
QUARANTINE_COLUMNS = {"product_id": pl.String, "reason": pl.String, "detail": pl.String}
OFFLINE_VERSION = "offline-v2"  # stored like a prompt version: which rules produced a row


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
    prompt_version: str

    def extract(self, products: pl.DataFrame) -> ExtractionResult: ...


# -- the offline stand-in ----------------------------------------------------------------

# Title phrases per key; longer phrases are matched first and consumed.
TITLE_LEXICON: dict[str, list[str]] = {
    "pattern": ["striped", "stripes", "checked", "checks", "printed", "print", "solid", "floral", "polka dot", "self design", "graphic", "colourblocked", "colour block", "embroidered", "camouflage", "abstract", "geometric", "typography", "paisley", "animal print"],
    "material": ["cotton", "denim", "leather", "linen", "silk", "wool", "woollen", "polyester", "canvas", "suede", "chiffon", "georgette", "satin", "velvet", "fleece", "nylon", "jute", "crepe", "knit", "lycra", "rubber", "steel", "ceramic", "brass"],
    "fit": ["slim fit", "regular fit", "skinny", "loose fit", "relaxed fit", "comfort fit", "straight fit", "tapered"],
    "neckline": ["round neck", "v neck", "v-neck", "polo collar", "high neck", "mandarin collar", "boat neck", "henley", "turtle neck", "collar"],
    "sleeve": ["sleeveless", "full sleeve", "full sleeves", "half sleeve", "half sleeves", "short sleeve", "short sleeves", "long sleeve", "long sleeves", "3/4 sleeve", "cap sleeve"],
    "length": ["mini", "midi", "maxi", "knee length", "ankle length", "three fourth", "cropped", "capri"],
    "style": ["polo", "hooded", "zipper", "lace up", "slip on", "flip flop", "chronograph", "analog", "digital", "backpack", "sling", "clutch", "tote", "aviator", "wayfarer", "low top", "high top", "strappy", "wedge", "stiletto", "pleated", "ruffled", "distressed", "washed"],
    "gender": ["men", "women", "boys", "girls", "unisex", "kids"],
    "color": ["navy blue", "turquoise blue", "sea green", "lime green", "off white", "grey melange", "coffee brown", "black", "white", "blue", "red", "green", "grey", "gray", "pink", "yellow", "brown", "purple", "orange", "beige", "maroon", "olive", "silver", "gold", "cream", "charcoal", "peach", "khaki", "magenta", "teal", "mustard", "lavender", "rust", "burgundy", "bronze", "copper", "mauve", "tan", "multi"],
}

# Reference colours for naming a measured pixel colour (offline stand-in for the VLM's eye).
NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25), "white": (240, 240, 240), "grey": (128, 128, 128), "charcoal": (60, 62, 66),
    "navy blue": (30, 40, 90), "blue": (45, 95, 200), "teal": (0, 120, 120), "red": (200, 35, 40),
    "green": (45, 135, 65), "olive": (110, 110, 50), "yellow": (230, 200, 50), "pink": (235, 135, 170),
    "brown": (110, 72, 40), "purple": (110, 50, 140), "orange": (235, 120, 40),
    "beige": (215, 195, 160), "maroon": (120, 25, 40), "silver": (190, 190, 195), "gold": (200, 160, 60),
}
_COLOR_NAMES = list(NAMED_COLORS)
_COLOR_REFS = np.array([NAMED_COLORS[n] for n in _COLOR_NAMES], dtype=np.float32)


def dominant_color(image_path: str, background_tolerance: float = 30.0) -> str | None:
    """Name of the product's dominant colour, measured on its pixels.

    The background colour is estimated from the image border (catalog shots are usually on
    white, but not always); pixels close to it are ignored. Every remaining pixel votes for
    its nearest named colour and the most voted name wins: a majority, unlike a mean or a
    median, does not turn a black-and-red shirt into brown.
    """
    with Image.open(image_path) as img:
        img.draft("RGB", (64, 64))
        pixels = np.asarray(img.convert("RGB").resize((30, 40)), dtype=np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    flat = pixels.reshape(-1, 3)
    foreground = flat[np.sqrt(((flat - background) ** 2).sum(axis=1)) > background_tolerance]
    if len(foreground) < 20:  # nothing but background: the product has the background's colour
        foreground = flat
    nearest = np.argmin(((foreground[:, None, :] - _COLOR_REFS[None, :, :]) ** 2).sum(axis=2), axis=1)
    return _COLOR_NAMES[int(np.bincount(nearest, minlength=len(_COLOR_NAMES)).argmax())]


def title_attributes(title: str) -> list[tuple[str, str]]:
    text = " " + re.sub(r"[^a-z0-9/]+", " ", title.lower().replace("-", " ")) + " "
    text = text.replace(" t shirt", " tshirt")  # not the "t" of a "v neck"-like phrase
    found: list[tuple[str, str]] = []
    for key, phrases in TITLE_LEXICON.items():
        for phrase in sorted(phrases, key=len, reverse=True):
            needle = f" {phrase.replace('-', ' ')} "
            if needle in text:
                found.append((key, phrase.replace("-", " ")))
                text = text.replace(needle, " ")  # "navy blue" must not also yield "blue"
    return found


class OfflineExtractor:
    """Attributes from catalog metadata, the title lexicon and the pixels; no network."""

    name = "offline"
    prompt_version = OFFLINE_VERSION

    def extract(self, products: pl.DataFrame) -> ExtractionResult:
        label_cols = [c for c in products.columns if c.startswith("label_")]
        rows: list[dict] = []
        quarantine: list[dict] = []
        for product in products.iter_rows(named=True):
            try:
                extracted = self._extract_one(product, label_cols)
            except Exception as exc:  # one bad product never stops the shard
                quarantine.append(
                    {"product_id": product["product_id"], "reason": "extraction failed", "detail": f"{type(exc).__name__}: {exc}"[:300]}
                )
                continue
            if not extracted:
                quarantine.append({"product_id": product["product_id"], "reason": "no attribute found", "detail": product["title"][:300]})
            rows.extend(extracted)
        attributes = pl.DataFrame(rows, schema=ATTRIBUTE_SCHEMA).unique(["product_id", "key", "value"], keep="first", maintain_order=True)
        by_source = attributes.group_by(pl.col("source").str.split(":").list.first()).len()
        return ExtractionResult(
            attributes=attributes,
            quarantine=pl.DataFrame(quarantine, schema=QUARANTINE_COLUMNS),
            stats={"extractor": self.name, "prompt_version": OFFLINE_VERSION, "calls_made": 0, "cache_hits": 0, "estimated_cost_usd": 0.0}
            | {f"rows_from_{source}": n for source, n in by_source.iter_rows()},
        )

    def _extract_one(self, product: dict, label_cols: list[str]) -> list[dict]:
        pid = product["product_id"]
        found: dict[tuple[str, str], str] = {}
        for col in label_cols:
            if product[col]:
                found[(col.removeprefix("label_"), product[col])] = f"catalog:{col.removeprefix('label_')}"
        keys_from_catalog = {key for key, _ in found}
        if "product_type" not in keys_from_catalog and product.get("category"):
            found[("product_type", product["category"].lower())] = "catalog:category"
            keys_from_catalog.add("product_type")
        for key, value in title_attributes(product["title"]):
            if key not in keys_from_catalog:  # the catalog's own label is better than a title word
                found.setdefault((key, value), "title")
        if "color" not in {key for key, _ in found}:
            color = dominant_color(product["image_path"])
            if color:
                found[("color", color)] = "pixels"
        return [{"product_id": pid, "key": k, "value": v, "source": s, "prompt_version": OFFLINE_VERSION} for (k, v), s in found.items()]
