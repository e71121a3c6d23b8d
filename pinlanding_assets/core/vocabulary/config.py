"""The settings of vocabulary curation (every field reachable from run config:
`defs/config_from_core.py` reads the names, defaults and these comments)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CurationConfig:
    min_count: int = 5
    min_share: float = 0.001  # of the key's labeled products
    merge: bool = True
    # merge a value into a more frequent one of the same key when the embeddings are very
    # close, or close and spelled alike ("sweat shirt" / "sweatshirt"); MiniLM alone puts
    # "black" and "white" at 0.76, so cosine alone must be strict.
    merge_min_cosine: float = 0.92
    merge_min_cosine_spelled_alike: float = 0.6
    merge_min_spelling: float = 0.9  # and same first and last letter: typos, not "shirt"/"t-shirt"
    max_value_words: int = 4
    max_value_chars: int = 40
    extra_denylist: tuple[str, ...] = ()

