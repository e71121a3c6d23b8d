"""Related collections: links a shopper would follow, each shown as what it is.

For each published page, among the other published pages (ours):

* **broader**: one attribute less ("Black Shirts" from "Black Checked Shirts");
* **narrower**: one attribute more ("Black Checked Shirts" from "Black Shirts");
* **other colours**: the same attributes with another colour ("White Checked Shirts");
* **shared products**: the pages sharing most products with it (`page_dedup.page_overlaps`)
  that no relation above already lists.

Within a relation: most products first (shared products: most shared), then slug; at most
`per_relation` links per relation. The order of relations is the order above.
"""

from __future__ import annotations

import polars as pl

from .collection_mining import ANCHOR_KEY

RELATIONS = ("broader", "narrower", "other colours", "shared products")
RELATED_SCHEMA = {"slug": pl.String, "related_slug": pl.String, "relation": pl.String, "position": pl.Int64}
COLOR_KEY = "color"


def related_collections(collections: pl.DataFrame, sizes: dict[str, int], overlaps: pl.DataFrame, per_relation: int = 4) -> pl.DataFrame:
    """RELATED_SCHEMA rows for the pages in `collections` (slug, attributes): `sizes` maps
    slug -> products on the page, `overlaps` is `page_overlaps` of those pages."""
    sets: dict[str, frozenset[tuple[str, str]]] = {
        row["slug"]: frozenset((a["key"], a["value"]) for a in row["attributes"] or []) for row in collections.select("slug", "attributes").iter_rows(named=True)
    }
    by_set = {attrs: slug for slug, attrs in sets.items()}
    narrower: dict[str, list[str]] = {}
    colourless: dict[frozenset, list[str]] = {}
    for slug, attrs in sets.items():
        for kv in attrs:
            if kv[0] != ANCHOR_KEY and (attrs - {kv}) in by_set:
                narrower.setdefault(by_set[attrs - {kv}], []).append(slug)
        colour = [kv for kv in attrs if kv[0] == COLOR_KEY]
        if len(colour) == 1:
            colourless.setdefault(attrs - set(colour), []).append(slug)
    shared: dict[str, list[tuple[int, str]]] = {}
    for a, b, n in overlaps.select("slug_a", "slug_b", "shared").iter_rows():
        if a in sets and b in sets:
            shared.setdefault(a, []).append((n, b))
            shared.setdefault(b, []).append((n, a))

    def biggest(slugs) -> list[str]:
        return sorted(set(slugs), key=lambda s: (-sizes.get(s, 0), s))[:per_relation]

    rows = []
    for slug, attrs in sets.items():
        listed = {slug}
        broader = [by_set[attrs - {kv}] for kv in attrs if kv[0] != ANCHOR_KEY and (attrs - {kv}) in by_set]
        colour = [kv for kv in attrs if kv[0] == COLOR_KEY]
        others = [s for s in colourless.get(attrs - set(colour), []) if s != slug] if len(colour) == 1 else []
        by_relation = {"broader": biggest(broader), "narrower": biggest(narrower.get(slug, [])), "other colours": biggest(others)}
        for relation in RELATIONS[:3]:
            links = [s for s in by_relation[relation] if s not in listed]
            listed |= set(links)
            rows += [{"slug": slug, "related_slug": s, "relation": relation, "position": i} for i, s in enumerate(links, 1)]
        most_shared = [s for _, s in sorted(shared.get(slug, []), key=lambda t: (-t[0], t[1])) if s not in listed][:per_relation]
        rows += [{"slug": slug, "related_slug": s, "relation": "shared products", "position": i} for i, s in enumerate(most_shared, 1)]
    return pl.DataFrame(rows, schema=RELATED_SCHEMA).sort("slug", "relation", "position")
