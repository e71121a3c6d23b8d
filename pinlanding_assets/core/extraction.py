"""Attribute extraction: which products are labeled, and how.

In the paper a VLM reads each sampled product (image + metadata) and proposes key-value
attributes: it is the *teacher* whose answers train the dual encoder. `AttributeExtractor`
is that step's interface; `vlm_extraction.VLMExtractor` is the real one and
`OfflineExtractor` the offline stand-in used when no VLM endpoint is configured. Both read
only what `catalog.TeacherInputs.view` lets through (never the catalog's labels unless a
user names them).

The offline teacher reads content: the product type from the shard's own discovered types
(`type_discovery`, last mention in the title), every other key from the attribute lexicon
(`lexicon`, first mention), the title first, then the merchant's category, then the
description; a colour the text does not name is read from the pixels by `PixelColors`: the
colour histogram of the product (background ignored) against those of the shard's products
whose titles name a colour (the catalog teaches the teacher's eye; a fixed palette where too
few titles name one). Trusted columns a user names (`TeacherInputs`) win over text.
Output rows: (product_id, key, value, source, prompt_version).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import polars as pl

from .catalog import PRODUCT_SCHEMA, TeacherInputs, open_image
from .lexicon import PIXEL_COLORS, attribute_index
from .text_rules import PRODUCT_TYPE_KEY, BrandPrefixes, PhraseIndex
from .type_discovery import DiscoveredType, DiscoveryConfig, discover_product_types

ATTRIBUTE_SCHEMA = {"product_id": pl.String, "key": pl.String, "value": pl.String, "source": pl.String, "prompt_version": pl.String}
QUARANTINE_COLUMNS = {"product_id": pl.String, "reason": pl.String, "detail": pl.String}
OFFLINE_VERSION = "offline-v4"  # stored like a prompt version: which rules produced a row


@dataclass(frozen=True)
class SampleSpec:
    """How many products of a shard the (expensive) extractor labels."""

    share: float = 0.2  # of the shard's products sent to the (paid) extractor
    min_count: int = 50  # ... but at least this many (all of a smaller shard)
    max_count: int | None = None  # a hard cap on calls per shard
    seed: int = 0  # which products: ranked by a seeded hash of their id

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


# -- the offline teacher ---------------------------------------------------------------

_COLOR_NAMES = list(PIXEL_COLORS)
_COLOR_REFS = np.array([PIXEL_COLORS[n] for n in _COLOR_NAMES], dtype=np.float32)


def foreground_pixels(image_path: str, background_tolerance: float = 30.0) -> np.ndarray:
    """[P, 3] float RGB of the product's pixels: the background colour is estimated from the
    image border (catalog shots are usually on white, but not always) and pixels close to it
    are dropped; an image that is all background keeps every pixel."""
    with open_image(image_path) as img:
        img.draft("RGB", (64, 64))
        pixels = np.asarray(img.convert("RGB").resize((30, 40)), dtype=np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    flat = pixels.reshape(-1, 3)
    foreground = flat[np.sqrt(((flat - background) ** 2).sum(axis=1)) > background_tolerance]
    return foreground if len(foreground) >= 20 else flat


def dominant_color(image_path: str) -> str | None:
    """Name of the product's dominant colour on a fixed palette: every foreground pixel votes
    for its nearest named colour and the most voted name wins (a majority, unlike a mean,
    does not turn a black-and-red shirt into brown)."""
    foreground = foreground_pixels(image_path)
    nearest = np.argmin(((foreground[:, None, :] - _COLOR_REFS[None, :, :]) ** 2).sum(axis=2), axis=1)
    return _COLOR_NAMES[int(np.bincount(nearest, minlength=len(_COLOR_NAMES)).argmax())]


def color_histogram(image_path: str, bins: int = 6) -> np.ndarray:
    """Unit-length square-rooted RGB histogram of the foreground ([bins**3])."""
    quantized = np.clip((foreground_pixels(image_path) / 256 * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount((quantized[:, 0] * bins + quantized[:, 1]) * bins + quantized[:, 2], minlength=bins**3).astype(np.float32)
    root = np.sqrt(counts / counts.sum())
    return root / np.linalg.norm(root)


class PixelColors:
    """Names a product's colour from its pixels by its `k` nearest neighbours (colour
    histograms) among reference products whose titles name a colour; with fewer than
    `min_reference` of those, by the fixed palette (`dominant_color`). `kinds`: each
    reference's product type (from its title), so what the namer's answer is worth can be
    judged per type (`evidence_weight`)."""

    def __init__(self, histograms: np.ndarray, colors: Sequence[str], k: int = 15, min_reference: int = 50, kinds: Sequence[str | None] = (), min_kind_references: int = 20):
        self.histograms = histograms
        self.colors = np.asarray(colors, dtype=object)
        self.kinds = np.asarray(kinds if len(kinds) == len(colors) else [None] * len(colors), dtype=object)
        self.k = k
        self.enabled = len(colors) >= min_reference
        self.min_kind_references = min_kind_references
        self._right: np.ndarray | None = None

    @classmethod
    def from_titles(cls, products: pl.DataFrame, index: PhraseIndex, brands: BrandPrefixes = BrandPrefixes(), max_reference: int = 4000, seed: int = 0) -> "PixelColors":
        """Reference products: up to `max_reference` of `products` whose title names a colour
        (outside a brand's name), with the product type the title names, if `index` knows
        product types."""
        named = [
            (path, found["color"], found.get(PRODUCT_TYPE_KEY)) for path, title in products.select("image_path", "title").iter_rows()
            if "color" in (found := index.find(title, keys=["color", PRODUCT_TYPE_KEY], brands=brands))
        ]
        rng = np.random.default_rng(seed)
        chosen = [named[i] for i in sorted(rng.permutation(len(named))[:max_reference])]
        histograms, colors, kinds = [], [], []
        for path, color, kind in chosen:
            try:
                histograms.append(color_histogram(path))
            except Exception:  # an unreadable reference image is simply not a reference
                continue
            colors.append(color)
            kinds.append(kind)
        return cls(np.stack(histograms) if histograms else np.zeros((0, 216), dtype=np.float32), colors, kinds=kinds)

    def name(self, image_path: str) -> str | None:
        if not self.enabled:
            return dominant_color(image_path)
        nearest = np.argsort(-(self.histograms @ color_histogram(image_path)))[: self.k]
        values, counts = np.unique(self.colors[nearest], return_counts=True)
        return str(values[counts.argmax()])

    def leave_one_out(self) -> np.ndarray:
        """Per reference: does the namer, without it, name it the colour its title names?"""
        if self._right is None:
            sims = self.histograms @ self.histograms.T
            np.fill_diagonal(sims, -np.inf)  # a reference never votes for itself
            nearest = np.argsort(-sims, axis=1)[:, : self.k]
            right = np.zeros(len(self.colors), dtype=bool)
            for row, neighbours in enumerate(nearest):
                values, counts = np.unique(self.colors[neighbours], return_counts=True)
                right[row] = values[counts.argmax()] == self.colors[row]
            self._right = right
        return self._right

    def evidence_weight(self, kind: str | None = None) -> float:
        """How much the namer's answer is worth, in logit units, estimated without labels:
        leave-one-out on its references (of product type `kind` when it has at least
        `min_kind_references` of them, else all), as the log-odds of its answer against any
        one other colour: log(r / ((1 - r) / (K - 1))) for agreement r over K colours. 0 when
        it cannot tell: palette mode, no better than chance, or, for a type, no better than
        always answering the type's commonest colour (a lipstick's pixels are its tube, the
        catalog's colour its shade)."""
        n = len(self.colors)
        if not self.enabled or n < 2:
            return 0.0
        right = self.leave_one_out()
        rows = self.kinds == kind if kind is not None else np.ones(n, dtype=bool)
        if kind is not None and rows.sum() >= self.min_kind_references:
            _, counts = np.unique(self.colors[rows], return_counts=True)
            if right[rows].mean() <= counts.max() / rows.sum():
                return 0.0
        else:
            rows = np.ones(n, dtype=bool)
        agreement = min(max(float(right[rows].mean()), 1e-3), 1 - 1e-3)
        colours = len(set(self.colors.tolist()))
        weight = float(np.log(agreement / ((1 - agreement) / max(colours - 1, 1))))
        return max(weight, 0.0)

    def tells(self, kind: str | None) -> bool:
        """Whether the namer's answer says anything for a product of this type: palette
        mode always answers (nothing to judge it by); otherwise its weight must be > 0."""
        return not self.enabled or self.evidence_weight(kind) > 0.0


def content_index(product_types: Sequence[DiscoveredType]) -> PhraseIndex:
    """Everything the offline teacher recognizes in text: the lexicon plus the discovered
    product types."""
    index = attribute_index()
    for discovered in product_types:
        index.add(PRODUCT_TYPE_KEY, " ".join(discovered.words), discovered.value)
    return index


# The colour the teacher reads on a product's pixels when its text names none, and what that
# answer is worth (logit units, `PixelColors.evidence_weight`): columns of catalog_products,
# computed once per product by `OfflineExtractor.with_pixel_colors`.
PIXEL_COLOR = "pixel_color"
PIXEL_WEIGHT = "pixel_weight"
IN_SAMPLE = "in_sample"  # catalog_products: the product was in the sample the teacher labeled
# The tables as stored: catalog_products adds the teacher's pixel reading and the sample flag
# to the validated products (and keeps the catalog's label_<key> columns, which vary);
# raw_attributes adds the shard and the extractor's name to the extracted rows.
STORED_PRODUCT_SCHEMA = PRODUCT_SCHEMA | {PIXEL_COLOR: pl.String, PIXEL_WEIGHT: pl.Float64, IN_SAMPLE: pl.Boolean}
RAW_ATTRIBUTE_TABLE_SCHEMA = ATTRIBUTE_SCHEMA | {"shard": pl.String, "extractor": pl.String}


def text_attributes(index: PhraseIndex, product: dict, brands: BrandPrefixes = BrandPrefixes()) -> dict[str, tuple[str, str]]:
    """key -> (value, source) from the product's text: the title first (head-noun rule for
    the type; mentions inside a brand's name skipped), then the merchant's category, then the
    description (prose: first mention)."""
    found: dict[str, tuple[str, str]] = {}
    for source, text, prose in (("title", product.get("title"), False), ("category", product.get("category"), False), ("description", product.get("description"), True)):
        if not text:
            continue
        for key, value in index.find(text, prose=prose, brands=brands if source == "title" else None).items():
            found.setdefault(key, (value, source))
    return found


def teacher_reading(index: PhraseIndex, product: dict, brands: BrandPrefixes = BrandPrefixes()) -> dict[str, tuple[str, str]]:
    """What the offline teacher reads on a product: its text (`text_attributes`), and the
    colour of its pixels (`PIXEL_COLOR`) when the text names none, spelled as the index
    spells it. (Scoring-time evidence reads the text part only: see `scoring`.)"""
    found = text_attributes(index, product, brands)
    if "color" not in found and product.get(PIXEL_COLOR):
        value = index.find(product[PIXEL_COLOR], keys=["color"]).get("color")
        if value is not None:
            found["color"] = (value, "pixels")
    return found


class OfflineExtractor:
    """The offline teacher: attributes from the product's text and pixels; no network.

    `product_types`: the shard's discovered types (`type_discovery.discover_product_types`
    over all of the shard's titles); `pixel_colors`: how it names a colour the text does not
    (default: the fixed palette); `brands`: title prefixes that name a brand, not the
    product. `inputs` says which catalog columns it may read. `for_shard` learns all three
    from the shard's products."""

    name = "offline"
    prompt_version = OFFLINE_VERSION

    def __init__(
        self,
        product_types: Sequence[DiscoveredType] = (),
        inputs: TeacherInputs = TeacherInputs(),
        pixel_colors: PixelColors | None = None,
        colour_named_share: dict[str | None, float] | None = None,
        min_colour_named_share: float = 0.3,
        brands: BrandPrefixes = BrandPrefixes(),
    ):
        self.product_types = list(product_types)
        self.inputs = inputs
        self.index = content_index(self.product_types)
        self.pixel_colors = pixel_colors or PixelColors(np.zeros((0, 216), dtype=np.float32), [])
        self.colour_named_share = colour_named_share or {}
        self.min_colour_named_share = min_colour_named_share
        self.brands = brands

    @classmethod
    def for_shard(cls, products: pl.DataFrame, inputs: TeacherInputs = TeacherInputs(), discovery: DiscoveryConfig = DiscoveryConfig()) -> "OfflineExtractor":
        """The teacher of one shard: product types discovered from all of its titles, the
        brand prefixes of its titles, a pixel-colour namer calibrated on its products whose
        titles name a colour, and, per product type, how often its products' text names a
        colour at all."""
        titles = products.get_column("title").to_list()
        types = discover_product_types(titles, discovery)
        index = content_index(types)
        brands = BrandPrefixes.learn(titles, index)
        teacher = cls(types, inputs, PixelColors.from_titles(products, index, brands), brands=brands)
        teacher.colour_named_share = teacher.colour_naming(products)
        return teacher

    def colour_naming(self, products: pl.DataFrame) -> dict[str | None, float]:
        """Per product type (None: all products), the share of products whose text names a
        colour. A type whose texts rarely do (perfumes, deodorants: the catalog's colour of a
        bottle is no shopping intent, and no title says it) gets no colour from its pixels."""
        counts: dict[str | None, list[int]] = {}
        for product in self.inputs.view(products.drop(PIXEL_COLOR, strict=False)).iter_rows(named=True):
            found = text_attributes(self.index, product, self.brands)
            kind = found.get(PRODUCT_TYPE_KEY, (None,))[0]
            for group in {kind, None}:
                named, total = counts.setdefault(group, [0, 0])
                counts[group] = [named + ("color" in found), total + 1]
        return {group: named / total for group, (named, total) in counts.items() if total}

    def colour_applies(self, product_type: str | None) -> bool:
        """Whether pixels may name the colour of a product of this type (see `colour_naming`;
        a type not seen, or no type, follows the shard as a whole)."""
        share = self.colour_named_share.get(product_type, self.colour_named_share.get(None, 1.0))
        return share >= self.min_colour_named_share

    def with_pixel_colors(self, products: pl.DataFrame) -> pl.DataFrame:
        """`products` with `PIXEL_COLOR`: the pixel colour of each product whose text (as
        the teacher may read it) names no colour, where colour applies to its type and the
        namer tells something for it (`PixelColors.tells`); null for the others, and for an
        image that cannot be read (its other attributes still stand); and `PIXEL_WEIGHT`,
        what the namer's answer is worth for the product's type."""
        colors: list[str | None] = []
        weights: list[float] = []
        weight_of: dict[str | None, float] = {}
        for product in self.inputs.view(products.drop(PIXEL_COLOR, strict=False)).iter_rows(named=True):
            color = None
            found = text_attributes(self.index, product, self.brands)
            kind = found.get(PRODUCT_TYPE_KEY, (None,))[0]
            if kind not in weight_of:
                weight_of[kind] = self.pixel_colors.evidence_weight(kind)
            if "color" not in found and self.colour_applies(kind) and self.pixel_colors.tells(kind):
                try:
                    color = self.pixel_colors.name(product["image_path"])
                except Exception:
                    color = None
            colors.append(color)
            weights.append(weight_of[kind])
        return products.with_columns(pl.Series(PIXEL_COLOR, colors, dtype=pl.String), pl.Series(PIXEL_WEIGHT, weights, dtype=pl.Float64))

    def extract(self, products: pl.DataFrame) -> ExtractionResult:
        if PIXEL_COLOR not in products.columns:
            products = self.with_pixel_colors(products)
        visible = self.inputs.view(products)
        rows: list[dict] = []
        quarantine: list[dict] = []
        for product in visible.iter_rows(named=True):
            try:
                extracted = self._extract_one(product)
            except Exception as exc:  # one bad product never stops the shard
                quarantine.append(
                    {"product_id": product["product_id"], "reason": "extraction failed", "detail": f"{type(exc).__name__}: {exc}"[:300]}
                )
                continue
            if not extracted:
                quarantine.append({"product_id": product["product_id"], "reason": "no attribute found", "detail": (product["title"] or "")[:300]})
            rows.extend(extracted)
        attributes = pl.DataFrame(rows, schema=ATTRIBUTE_SCHEMA).unique(["product_id", "key", "value"], keep="first", maintain_order=True)
        by_source = attributes.group_by(pl.col("source").str.split(":").list.first()).len()
        return ExtractionResult(
            attributes=attributes,
            quarantine=pl.DataFrame(quarantine, schema=QUARANTINE_COLUMNS),
            stats={
                "extractor": self.name, "prompt_version": OFFLINE_VERSION, "calls_made": 0, "cache_hits": 0, "estimated_cost_usd": 0.0,
                "teacher_reads": self.inputs.describe(), "discovered_product_types": len(self.product_types),
                "pixel_colour_references": len(self.pixel_colors.colors) if self.pixel_colors.enabled else 0,
                "brand_prefixes": sorted(f"{key}: {' '.join(prefix)}" for key, prefix in self.brands.hidden),
                "types_without_pixel_colour": sorted(str(t) for t in self.colour_named_share if t is not None and not (self.colour_applies(t) and self.pixel_colors.tells(t))),
            }
            | {f"rows_from_{source}": n for source, n in by_source.iter_rows()},
        )

    def _extract_one(self, product: dict) -> list[dict]:
        found: dict[str, tuple[str, str]] = {}
        for column, key in self.inputs.trusted_attributes():
            if product.get(column):
                found[key] = (str(product[column]).strip().lower(), f"column:{column}")
        for key, hit in teacher_reading(self.index, product, self.brands).items():
            found.setdefault(key, hit)
        return [
            {"product_id": product["product_id"], "key": key, "value": value, "source": source, "prompt_version": OFFLINE_VERSION}
            for key, (value, source) in found.items()
        ]
