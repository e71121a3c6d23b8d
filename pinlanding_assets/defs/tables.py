"""The warehouse tables as Dagster assets: one asset per table another stage reads.

Modelling. A step (one op) writes several DuckDB tables in one go, so each step is a
`@multi_asset` whose `AssetSpec`s are the tables it owns, and every spec lists as `deps`
exactly the tables its step reads. The lineage graph is then the real data flow (`clip_model`
reads `catalog_products`, not "whatever raw_attributes did"), and each table has its own
kinds, owners, column schema, row counts and history in the UI. The alternative,
non-materialized `AssetSpec`s for tables written as side effects, would show tables that are
never materialized and whose row counts nobody reports.

What the graph cannot show, said here and in the tables' descriptions:

* A table a step reads back from its own earlier runs (the `product_embeddings` cache,
  the previous `published_pages` and `retired_slugs`) is not a dependency: Dagster allows
  an asset to depend on itself only through a time-window partition mapping.
* A table has one owning step, but two steps also change tables they do not own:
  `landing_pages` replaces the `quarantine` rows of stage `publish` (refused images), and
  `collection_queries` deletes the rows of shards that left the catalog from the per-shard
  tables (`core/retirement.py`).

Owners: one team per asset group (`OWNERS_BY_GROUP`). Kinds: `duckdb` on every warehouse
table, plus what computes it (`pytorch`, `spark`, `openai` where the VLM/LLM may be
called). Column schemas come from the core's schema dicts (`table_schema`); each
materialization reports `dagster/table_name`, `dagster/row_count` (the whole table) and, for
a shard, `dagster/partition_row_count` (`written_table_metadata`).

Code versions: every asset carries a `code_version`, one per step (`CODE_VERSION` in each
asset module: the tables a step writes change together), readable from the Definitions
(`definitions.asset_code_versions`). Rule: bump a step's version when what it writes would
change for the same inputs, i.e. when the logic of its asset function or of the core modules
that compute it changes (not for logging, metadata or refactors that keep the output).
"""

from collections.abc import Iterable, Mapping

import polars as pl
from dagster import AssetSpec, AutomationCondition, TableColumn, TableSchema

from ..core.settings import WAREHOUSE_FILE
from ..core.warehouse import Warehouse, qualified_table_name

CATALOG_ML_TEAM = "team:catalog-ml"  # extraction, curation, the model and its scores
PAGES_TEAM = "team:pinlanding"  # collections, pages, the site
OWNERS_BY_GROUP = {
    "extraction": [CATALOG_ML_TEAM],
    "curation": [CATALOG_ML_TEAM],
    "model": [CATALOG_ML_TEAM],
    "pages": [PAGES_TEAM],
}
WAREHOUSE_KIND = "duckdb"


def table_schema(schema: Mapping[str, pl.DataType] | pl.Schema) -> TableSchema:
    """A polars schema as the column schema the UI shows (type names as polars prints them)."""
    return TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in schema.items()])


def table_spec(
    table: str,
    *,
    group: str,
    description: str,
    schema: Mapping[str, pl.DataType],
    code_version: str,
    kinds: Iterable[str] = (),
    deps: Iterable[str] = (),
    automation_condition: AutomationCondition | None = None,
) -> AssetSpec:
    """The asset of one warehouse table, named after it."""
    return AssetSpec(
        automation_condition=automation_condition,
        key=table,
        description=description,
        group_name=group,
        owners=OWNERS_BY_GROUP[group],
        kinds={WAREHOUSE_KIND, *kinds},
        code_version=code_version,
        deps=list(deps),
        metadata={"dagster/column_schema": table_schema(schema), "dagster/table_name": qualified_table_name(WAREHOUSE_FILE, table)},
    )


def written_table_metadata(warehouse: Warehouse, tables: Iterable[str], shard: str | None = None) -> dict[str, dict]:
    """{table: its materialization's table metadata}: the table's name and rows, and the
    rows of `shard` when the asset is partitioned by shard (tables without a shard column
    report only the whole table)."""
    tables = list(tables)
    totals = warehouse.row_counts(tables)
    in_shard = warehouse.row_counts(tables, "shard", shard) if shard is not None else {}
    metadata = {}
    for table in tables:
        entries = {"dagster/table_name": warehouse.qualified_name(table), "dagster/row_count": totals[table]}
        if table in in_shard:
            entries["dagster/partition_row_count"] = in_shard[table]
        metadata[table] = entries
    return metadata
