"""The keyword baseline for the page-quality benchmark: BM25 over product titles.

For a collection title ("Navy Blue Casual Shirts for Men") the baseline page is the top-k
products whose titles match it best by BM25 (the `bm25s` library; DuckDB's `fts`
extension cannot be downloaded here). Both sides read words as the pipeline does
(`text_rules.raw_words` then `fold_word`: lower case, "t-shirt"/"tee" -> "tshirt", plurals
folded: the catalog says "Shirt", a title says "Shirts"), less BM25's English stop words,
so the baseline is not handicapped by spelling.
"""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np
import polars as pl

from pinlanding_assets.core.text_rules import fold_word, raw_words

KEYWORD_PAGE_SCHEMA = {"slug": pl.String, "product_id": pl.String, "rank": pl.Int64, "score": pl.Float64}


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Folded words of each text; stop words go before folding (bm25s's English list)."""
    tokens = bm25s.tokenize([" ".join(raw_words(t)) for t in texts], stopwords="en", return_ids=False, show_progress=False)
    return [[fold_word(w) for w in doc] for doc in tokens]


class KeywordBaseline:
    """A BM25 index over product titles."""

    def __init__(self, product_ids: Sequence[str], titles: Sequence[str], k1: float = 1.5, b: float = 0.75):
        if len(product_ids) != len(titles):
            raise ValueError(f"{len(product_ids)} product ids for {len(titles)} titles")
        self.product_ids = np.asarray(product_ids, dtype=object)
        self.model = bm25s.BM25(k1=k1, b=b)
        self.model.index(tokenize(titles), show_progress=False)

    def top_products(self, slugs: Sequence[str], queries: Sequence[str], k: int = 10) -> pl.DataFrame:
        """slug, product_id, rank (1..k), score: the k best products for each query; a query
        none of whose words occur in any title gets no rows."""
        k = min(k, len(self.product_ids))
        vocab = self.model.vocab_dict
        rows: list[tuple[str, str, int, float]] = []
        known = [(slug, [t for t in tokens if t in vocab]) for slug, tokens in zip(slugs, tokenize(queries))]
        askable = [(slug, tokens) for slug, tokens in known if tokens]
        if not askable or k == 0:
            return pl.DataFrame(schema=KEYWORD_PAGE_SCHEMA)
        docs, scores = self.model.retrieve([tokens for _, tokens in askable], k=k, show_progress=False)
        for (slug, _), doc_row, score_row in zip(askable, docs, scores):
            for rank, (doc, score) in enumerate(zip(doc_row, score_row), start=1):
                if score > 0:
                    rows.append((slug, str(self.product_ids[doc]), rank, float(score)))
        return pl.DataFrame(rows, schema=KEYWORD_PAGE_SCHEMA, orient="row")
