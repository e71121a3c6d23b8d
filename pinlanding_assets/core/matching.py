"""Matching products to collections: the landing pages.

A product joins a collection's page when it carries every attribute of the collection;
its relevance is the product, over those attributes, of the calibrated probability (the
product's own text and pixels as evidence) times the encoder's probability (the towers
alone, `scoring.SCORE_SCHEMA`): the chance that all of them are right, taking them as
independent, weighted by how surely the image and title agree with what the text says. A
page is only right for a product when every attribute is, and the mean would rank a product
with one doubtful attribute above one whose attributes are all fairly sure; and where the
text names an attribute the probability is near 1 for every product that names it, so the
encoder's agreement is what puts the clearest examples first (on the full catalog's
content-first run, 2026-12-02: page P@10 against catalog labels, mapped, 0.896 -> 0.920 at
`min_relevance` 0.3). Products below
`min_relevance` are left out, pages are ranked by relevance (ties by product id), cut at
`max_page_size`, and pages below `min_page_size` are dropped.

Two implementations of the same rule: `match_pages_spark` (the default engine of
`landing_pages`; runs on any Spark session: `local[*]`, a cluster, or Spark Connect) and
`match_pages_duckdb` (embedded, no Java; the reference that cross-checks Spark in tests and
the `duckdb` engine of `landing_pages`). Both give identical pages.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from .warehouse import query_polars

PAGE_SCHEMA = {"slug": pl.String, "product_id": pl.String, "relevance": pl.Float64, "rank": pl.Int64}


MATCHING_ENGINES = ("spark", "duckdb")  # `landing_pages`' engine option: Spark (default) or embedded DuckDB (no Java)


@dataclass(frozen=True)
class MatchingConfig:
    # A product's relevance (joint probability x encoder agreement) for the page, at least.
    # Full catalog, content first, near-duplicates merged (2026-12-02, bench_page_quality
    # --use-run-tables): 0.3 -> 1,499 pages at P@10 (mapped) 0.918; 0.2 -> 1,543 at 0.916;
    # 0.1 -> 1,600 at 0.911.
    min_relevance: float = 0.2
    min_page_size: int = 10  # a page with fewer eligible products is dropped
    max_page_size: int = 60  # products per page, the most relevant first


# The engines see integer codes, not strings: joining millions of (collection, product)
# pairs on strings is what dominated the cost. Product codes follow the sorted product ids,
# so ordering by code is ordering by id (the tie-break), in both engines. Attribute codes
# follow rarity (frequency, then key and value), the order the reference computes itself
# from the frequencies; Spark's plan (`_spark_sql`) relies on the codes instead.
#
# Plan (the reference, `_sql`): each collection's attributes are laid out rarest first (a1, a2, ...). The
# candidates are the products carrying a1, and each further attribute is one equi-join on
# (product, attribute) that can only shrink them. This costs about the rarest attribute's
# frequency per collection and needs no (collection, product) aggregation; joining every
# attribute and counting matches (the obvious form) costs the sum of all frequencies per
# collection, which "gender = men" alone makes quadratic.
# Relevance = p1 * p2 * ... * pn in DOUBLE, always in the same order (rarest attribute
# first): IEEE multiplication is correctly rounded, so DuckDB and Spark compute
# bit-identical relevances and therefore identical ranks.


def _sql(config: MatchingConfig, max_attributes: int) -> str:
    slots = range(1, max(max_attributes, 1) + 1)
    pivot = ",\n".join(f"        max(CASE WHEN pos = {i} THEN attr END) AS a{i}" for i in slots)
    joins = ["    JOIN product_attributes p1 ON p1.attr = c.a1"]
    for i in slots:
        if i > 1:
            joins.append(f"    LEFT JOIN product_attributes p{i} ON p{i}.pid = p1.pid AND p{i}.attr = c.a{i}")
    present = " AND ".join(f"(c.a{i} IS NULL OR p{i}.pid IS NOT NULL)" for i in slots if i > 1) or "TRUE"
    joint = " * ".join(f"coalesce(CAST(p{i}.probability AS DOUBLE), 1.0)" for i in slots)
    nl = "\n"
    return f"""
WITH attribute_frequency AS (
    SELECT attr, count(*) AS frequency FROM product_attributes GROUP BY attr
), positioned AS (
    SELECT c.cid, c.attr, c.n_attributes,
           row_number() OVER (PARTITION BY c.cid ORDER BY coalesce(f.frequency, 0) ASC, c.attr ASC) AS pos
    FROM collection_attributes c LEFT JOIN attribute_frequency f ON f.attr = c.attr
), wide AS (
    SELECT cid, min(n_attributes) AS n_attributes, count(*) AS n_rows,
{pivot}
    FROM positioned GROUP BY cid
), eligible AS (
    SELECT c.cid, p1.pid, {joint} AS relevance
    FROM wide c
{nl.join(joins)}
    WHERE c.n_rows = c.n_attributes AND {present}
), ranked AS (
    SELECT cid, pid, relevance,
           row_number() OVER (PARTITION BY cid ORDER BY relevance DESC, pid ASC) AS rank,
           count(*) OVER (PARTITION BY cid) AS eligible_count
    FROM eligible
    WHERE relevance >= {float(config.min_relevance)!r}
)
SELECT cid, pid, relevance, rank FROM ranked
WHERE rank <= {int(config.max_page_size)} AND eligible_count >= {int(config.min_page_size)}
"""


NO_ATTRIBUTE = -1  # the second slot of a one-attribute collection (attribute codes are >= 0)


def _spark_sql(config: MatchingConfig, max_attributes: int) -> str:
    """The same rule, planned for Spark. The reference's plan, run on Spark, shuffled every
    candidate (product, collection) pair once per further attribute: 212M pairs at 1M
    products x 10k collections. Here Spark reads one row per product (`products`: its
    attribute codes ascending, i.e. rarest first, and their probabilities) and one per
    collection (`collections`: a1, a2, ... rarest first, `EncodedInputs.collection_layout`).
    A product emits its attribute pairs (a_i, a_j), i < j, and (a_i, NO_ATTRIBUTE), and a
    broadcast join on the collections' (a1, a2) finds every collection whose two rarest
    attributes it carries: each (product, collection) once, and 8x fewer candidates than
    the products carrying a1 (26.8M against 212.6M). a3, a4, ... are map lookups in the same task, so nothing is
    shuffled before the ranking. There only the top of each page leaves its task: a
    `row_number() <= n` filter alone over its window lets Spark cut each partition to its
    top n per page before the shuffle (WindowGroupLimit). A page has at least
    `min_page_size` eligible products when its top max(max_page_size, min_page_size) has,
    so the eligible count is taken over that top."""
    slots = range(1, max(max_attributes, 1) + 1)
    limit = max(int(config.max_page_size), int(config.min_page_size))
    further = [i for i in slots if i > 2]
    present = " AND ".join(f"(c.a{i} IS NULL OR element_at(p.probabilities, c.a{i}) IS NOT NULL)" for i in further) or "TRUE"
    # p1 * p2 * p3 * ..., left to right as in the reference: bit-identical relevances.
    joint = " * ".join(["p.x_probability", "coalesce(p.y_probability, 1.0)"] + [f"coalesce(element_at(p.probabilities, c.a{i}), 1.0)" for i in further])
    return f"""
WITH pairs AS (
    SELECT p.pid, map_from_arrays(p.attrs, p.probabilities) AS probabilities,
           x, p.probabilities[i] AS x_probability,
           CASE WHEN j = i THEN {NO_ATTRIBUTE} ELSE p.attrs[j] END AS y,
           CASE WHEN j = i THEN NULL ELSE p.probabilities[j] END AS y_probability
    FROM products p
    LATERAL VIEW posexplode(p.attrs) xs AS i, x
    LATERAL VIEW explode(sequence(i, size(p.attrs) - 1)) ys AS j
), eligible AS (
    SELECT /*+ BROADCAST(c) */ c.cid, p.pid, {joint} AS relevance
    FROM pairs p JOIN collections c ON c.a1 = p.x AND coalesce(c.a2, {NO_ATTRIBUTE}) = p.y
    WHERE {present}
), ranked AS (
    SELECT cid, pid, relevance, row_number() OVER (PARTITION BY cid ORDER BY relevance DESC, pid ASC) AS rank
    FROM eligible
    WHERE relevance >= {float(config.min_relevance)!r}
), top AS (
    SELECT cid, pid, relevance, rank FROM ranked WHERE rank <= {limit}
), counted AS (
    SELECT cid, pid, relevance, rank, count(*) OVER (PARTITION BY cid) AS eligible_count FROM top
)
SELECT cid, pid, relevance, rank FROM counted
WHERE rank <= {int(config.max_page_size)} AND eligible_count >= {int(config.min_page_size)}
"""


PRODUCT_INPUT_SCHEMA = {"product_id": pl.String, "key": pl.String, "value": pl.String, "probability": pl.Float32}
ENCODER_PROBABILITY = "encoder_probability"  # optional input column; missing: the towers are taken to agree (1.0)
COLLECTION_INPUT_SCHEMA = {"slug": pl.String, "key": pl.String, "value": pl.String, "n_attributes": pl.Int64}


@dataclass(frozen=True)
class EncodedInputs:
    """What the engines read: product_attributes(pid, attr, probability) and
    collection_attributes(cid, attr, n_attributes), plus the code tables to decode pages."""

    product_attributes: pl.DataFrame
    collection_attributes: pl.DataFrame
    product_codes: pl.DataFrame  # pid, product_id
    collection_codes: pl.DataFrame  # cid, slug

    @property
    def max_attributes(self) -> int:
        return int(self.collection_attributes.group_by("cid").len().get_column("len").max() or 0)

    @property
    def empty(self) -> bool:
        return self.product_attributes.is_empty() or self.collection_attributes.is_empty()

    def product_rows(self) -> pl.DataFrame:
        """One row per product, Spark's input: pid, attrs (codes ascending: rarest first),
        probabilities (aligned with attrs)."""
        return (
            self.product_attributes.sort("pid", "attr")
            .group_by("pid", maintain_order=True)
            .agg(pl.col("attr").alias("attrs"), pl.col("probability").alias("probabilities"))
        )

    def collection_layout(self) -> pl.DataFrame:
        """One row per collection, Spark's input: cid, a1, a2, ... (rarest first; null past
        its size; a2 always, since the join reads it: every collection may have one
        attribute, as a style concept's combinations often do). A collection whose rows
        disagree with its n_attributes matches nothing, as in the reference, and is left out."""
        slots = range(1, max(self.max_attributes, 2) + 1)
        grouped = (
            self.collection_attributes.sort("cid", "attr")
            .group_by("cid", maintain_order=True)
            .agg(pl.col("attr"), pl.col("n_attributes").min(), pl.len().alias("n_rows"))
            .filter(pl.col("n_rows") == pl.col("n_attributes"))
        )
        return grouped.select("cid", *(pl.col("attr").list.get(i - 1, null_on_oob=True).alias(f"a{i}") for i in slots))

    def decode(self, raw_pages: pl.DataFrame) -> pl.DataFrame:
        if raw_pages.is_empty():
            return pl.DataFrame(schema=PAGE_SCHEMA)
        pages = raw_pages.cast({"cid": pl.Int32, "pid": pl.Int32}).join(self.collection_codes, on="cid").join(self.product_codes, on="pid")
        return pages.select(list(PAGE_SCHEMA)).cast(PAGE_SCHEMA).sort("slug", "rank")  # type: ignore[arg-type]


def encode_inputs(product_attributes: pl.DataFrame, collection_attributes: pl.DataFrame) -> EncodedInputs:
    """Typed, de-duplicated, integer-coded inputs. A repeated (product, key, value) row would
    count twice toward `matched` and let a product into a page it does not belong to."""
    agreement = pl.col(ENCODER_PROBABILITY).cast(pl.Float64).fill_null(1.0) if ENCODER_PROBABILITY in product_attributes.columns else pl.lit(1.0)
    products = (
        product_attributes.with_columns(agreement.alias(ENCODER_PROBABILITY))
        .select(*PRODUCT_INPUT_SCHEMA, ENCODER_PROBABILITY)
        .cast(PRODUCT_INPUT_SCHEMA)  # type: ignore[arg-type]
        .unique(["product_id", "key", "value"], keep="first")
        # One DOUBLE per (product, attribute), multiplied here once: both engines read the
        # same values, so their relevances stay bit-identical.
        .with_columns((pl.col("probability").cast(pl.Float64) * pl.col(ENCODER_PROBABILITY)).alias("probability"))
    )
    collections = collection_attributes.select(list(COLLECTION_INPUT_SCHEMA)).cast(COLLECTION_INPUT_SCHEMA).unique(["slug", "key", "value"], keep="first")  # type: ignore[arg-type]
    product_codes = products.select("product_id").unique().sort("product_id").with_row_index("pid").cast({"pid": pl.Int32})
    collection_codes = collections.select("slug").unique().sort("slug").with_row_index("cid").cast({"cid": pl.Int32})
    # Codes in rarity order (products carrying the attribute, then key and value), the order
    # the reference sorts each collection's attributes in: ascending codes are rarest first.
    frequency = products.group_by("key", "value").len("frequency")
    attribute_codes = (
        pl.concat([products.select("key", "value"), collections.select("key", "value")])
        .unique()
        .join(frequency, on=["key", "value"], how="left")
        .with_columns(pl.col("frequency").fill_null(0))
        .sort("frequency", "key", "value")
        .with_row_index("attr")
        .select(pl.col("attr").cast(pl.Int32), "key", "value")
    )
    return EncodedInputs(
        product_attributes=products.join(product_codes, on="product_id").join(attribute_codes, on=["key", "value"]).select("pid", "attr", "probability"),
        collection_attributes=collections.join(collection_codes, on="slug").join(attribute_codes, on=["key", "value"]).select("cid", "attr", "n_attributes"),
        product_codes=product_codes,
        collection_codes=collection_codes,
    )


def match_pages_duckdb(
    product_attributes: pl.DataFrame,
    collection_attributes: pl.DataFrame,
    config: MatchingConfig,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> pl.DataFrame:
    """product_attributes: product_id, key, value, probability (assigned only), and
    optionally encoder_probability;
    collection_attributes: slug, key, value, n_attributes. `memory_limit` (e.g. "4GB")
    makes DuckDB spill to its temp directory instead of growing past it."""
    inputs = encode_inputs(product_attributes, collection_attributes)
    if inputs.empty:
        return pl.DataFrame(schema=PAGE_SCHEMA)
    con = duckdb.connect()
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}").fetchall()
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit.replace(chr(39), '')}'").fetchall()
            spill = Path(tempfile.gettempdir()) / "pinlanding-duckdb-spill"  # never the working directory
            con.execute(f"SET temp_directory = '{str(spill).replace(chr(39), '')}'").fetchall()
        con.execute("SET enable_progress_bar = false").fetchall()
        con.register("product_attributes", inputs.product_attributes.to_arrow())
        con.register("collection_attributes", inputs.collection_attributes.to_arrow())
        return inputs.decode(query_polars(con, _sql(config, inputs.max_attributes)))
    finally:
        con.close()


def spark_input_location(configured: str | None, master: str | None, local_dir: Path) -> str | None:
    """Where Spark reads its inputs: `configured` (shared storage every executor reads), else,
    for a local master, Parquet under `local_dir` (measured at 100k products x 1k collections:
    4.6 s against 14.7 s for Arrow data through the session, and half the driver memory), else
    None: Arrow data through the session, the one way that works on any cluster or Spark
    Connect without shared storage."""
    if configured:
        return configured
    if master and master.startswith("local"):
        return str(local_dir)
    return None


def join_uri(base: str, *parts: str) -> str:
    """`base`/`parts` for a local path or a URI. `Path()` would fold a scheme's `//` into
    `/` (`s3a://bucket/in` -> `s3a:/bucket/in`, `file:///tmp` -> `file:/tmp`), which no
    filesystem resolves, so URIs are joined as strings."""
    if "://" not in base:
        return str(Path(base).joinpath(*parts))
    return "/".join([base.rstrip("/"), *(part.strip("/") for part in parts)])


def _filesystem_of(uri: str):
    """(pyarrow filesystem, path) for writing and removing staged inputs from this process.
    Hadoop's S3 connectors (`s3a://`, `s3n://`) name the same objects pyarrow reads as `s3://`:
    only this process's writer sees the translation, Spark reads the URI as given."""
    import pyarrow.fs as pafs

    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("", "file"):
        return pafs.LocalFileSystem(), uri.split("://", 1)[1] if scheme else str(Path(uri).absolute())
    try:
        return pafs.FileSystem.from_uri(("s3" + uri[len(scheme):]) if scheme in ("s3a", "s3n") else uri)
    except Exception as error:  # pyarrow raises ArrowInvalid/ArrowNotImplementedError/OSError by scheme
        raise ValueError(
            f"spark_input_dir {uri!r}: this process cannot write {scheme}:// URIs ({error}); use a path or URI "
            "both this process and the executors can reach (a shared mount, s3a://, gs://, abfs://, hdfs://), "
            "or leave spark_input_dir unset to send the inputs as Arrow data through the Spark session"
        ) from error


# Spark splits a Parquet file between tasks at row-group boundaries: pyarrow's default
# (1M rows) put 1M products in one row group, i.e. one task and one busy core.
STAGED_ROW_GROUP_ROWS = 65_536


def stage_inputs(inputs: EncodedInputs, input_uri: str) -> tuple[str, str]:
    """Writes Spark's inputs (`products`, `collections`) as Parquet under `input_uri`;
    returns the two file URIs."""
    import pyarrow.parquet as pq

    filesystem, root = _filesystem_of(input_uri)
    filesystem.create_dir(root, recursive=True)
    uris = []
    for name, frame in spark_inputs(inputs).items():
        pq.write_table(frame.to_arrow(), f"{root.rstrip('/')}/{name}.parquet", filesystem=filesystem, row_group_size=STAGED_ROW_GROUP_ROWS)
        uris.append(join_uri(input_uri, f"{name}.parquet"))
    return uris[0], uris[1]


def spark_inputs(inputs: EncodedInputs) -> dict[str, pl.DataFrame]:
    """The views `_spark_sql` reads, by name."""
    return {"products": inputs.product_rows(), "collections": inputs.collection_layout()}


def remove_staged_inputs(input_uri: str) -> None:
    """Removes a folder `stage_inputs` wrote (nothing when it is already gone)."""
    filesystem, root = _filesystem_of(input_uri)
    try:
        filesystem.delete_dir(root)
    except FileNotFoundError:
        pass


def match_pages_spark(spark, product_attributes: pl.DataFrame, collection_attributes: pl.DataFrame, config: MatchingConfig, input_uri: str | None = None) -> pl.DataFrame:
    """The same rule on any Spark session: classic (`local[*]`, a standalone or YARN
    cluster) or Spark Connect. Without `input_uri` the inputs travel as Arrow data through
    the session, which needs nothing shared between this process and the cluster. With it
    (a path or URI every executor can read: a shared mount, `s3a://...`), they are written
    there as Parquet and read by the executors, the way for inputs too large to send
    through the driver. Only DataFrame/SQL calls: no `sparkContext`, which Connect lacks."""
    inputs = encode_inputs(product_attributes, collection_attributes)
    if inputs.empty:
        return pl.DataFrame(schema=PAGE_SCHEMA)
    result = spark_pages_query(spark, inputs, config, input_uri).toArrow()
    return inputs.decode(pl.from_arrow(result))  # type: ignore[arg-type]


def spark_pages_query(spark, inputs: EncodedInputs, config: MatchingConfig, input_uri: str | None = None):
    """The Spark DataFrame of the raw pages (cid, pid, relevance, rank), its inputs sent or
    staged as `match_pages_spark` says."""
    if input_uri:
        products_uri, collections_uri = stage_inputs(inputs, str(input_uri))
        products_df = spark.read.parquet(products_uri)
        collections_df = spark.read.parquet(collections_uri)
    else:
        frames = spark_inputs(inputs)
        # A classic session makes one partition per Arrow batch (10k rows): 100 at 1M
        # products, each sending its own top of every page to the shuffle (32 s against 11 s
        # in as many partitions as the shuffle has).
        products_df = spark.createDataFrame(frames["products"].to_arrow()).coalesce(_shuffle_partitions(spark))
        collections_df = spark.createDataFrame(frames["collections"].to_arrow())
    products_df.createOrReplaceTempView("products")
    collections_df.createOrReplaceTempView("collections")
    return spark.sql(_spark_sql(config, inputs.max_attributes))


def _shuffle_partitions(spark) -> int:
    """The session's `spark.sql.shuffle.partitions` (200 when unset or not a number)."""
    value = str(spark.conf.get("spark.sql.shuffle.partitions", "200"))
    return int(value) if value.isdigit() else 200


def withhold_products(pages: pl.DataFrame, product_ids: set[str], config: MatchingConfig) -> pl.DataFrame:
    """The pages without these products (their images failed the checks of publishing):
    the products below them move up a rank, and a page left with fewer than
    `min_page_size` products is dropped, as matching drops it."""
    if not product_ids:
        return pages
    kept = pages.filter(~pl.col("product_id").is_in(pl.Series(sorted(product_ids), dtype=pl.String))).sort("slug", "rank")
    kept = kept.with_columns(pl.int_range(1, pl.len() + 1).over("slug").alias("rank"))
    kept = kept.filter(pl.len().over("slug") >= config.min_page_size)
    return kept.select(list(PAGE_SCHEMA)).cast(PAGE_SCHEMA)  # type: ignore[arg-type]


# -- generated inputs (equality tests and the scale benchmark) ------------------------

SYNTHETIC_KEYS = {  # key: (number of values, share of products that carry the key)
    "product_type": (120, 1.0),
    "color": (40, 1.0),
    "gender": (5, 1.0),
    "occasion": (8, 0.9),
    "season": (4, 0.9),
    "pattern": (10, 0.4),
    "material": (12, 0.3),
}


def synthetic_inputs(n_products: int, n_collections: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Catalog-shaped matching inputs: Zipf-distributed values per key, probabilities in
    [0.3, 1], and collections built from real products' attributes (the product type plus
    1-3 other keys), so pages have the skewed sizes mined collections have."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = np.char.add("p", np.arange(n_products).astype(str))
    columns: dict[str, np.ndarray] = {}
    parts = []
    for key, (n_values, share) in SYNTHETIC_KEYS.items():
        weights = 1.0 / np.arange(1, n_values + 1) ** 1.1
        values = rng.choice(n_values, size=n_products, p=weights / weights.sum())
        present = rng.random(n_products) < share
        columns[key] = np.where(present, values, -1)
        parts.append(
            pl.DataFrame(
                {
                    "product_id": ids[present],
                    "key": key,
                    "value": np.char.add(f"{key[:3]}", values[present].astype(str)),
                    "probability": rng.uniform(0.3, 1.0, int(present.sum())).astype(np.float32),
                }
            )
        )
    products = pl.concat(parts).cast(PRODUCT_INPUT_SCHEMA)  # type: ignore[arg-type]
    other_keys = [k for k in SYNTHETIC_KEYS if k != "product_type"]
    seen: set[tuple[tuple[str, str], ...]] = set()
    rows = []
    attempts = 0
    while len(seen) < n_collections and attempts < n_collections * 50:
        attempts += 1
        pick = int(rng.integers(n_products))
        n_more = int(rng.integers(1, 4))
        keys = [k for k in rng.permutation(other_keys)[: n_more * 2] if columns[k][pick] >= 0][:n_more]
        if not keys:
            continue
        attrs = tuple(sorted([("product_type", f"pro{columns['product_type'][pick]}")] + [(k, f"{k[:3]}{columns[k][pick]}") for k in keys]))
        if attrs in seen:
            continue
        seen.add(attrs)
        slug = f"c{len(seen):06d}"
        rows.extend((slug, k, v, len(attrs)) for k, v in attrs)
    collections = pl.DataFrame(rows, schema=COLLECTION_INPUT_SCHEMA, orient="row")
    return products, collections
