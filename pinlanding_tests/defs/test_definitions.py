from dagster import AssetKey, Definitions, DynamicPartitionsDefinition, TableSchema

from pinlanding_assets.definitions import ASSETS, asset_code_versions, defs

SIX = ["raw_attributes", "curated_vocabulary", "clip_model", "product_attribute_scores", "collection_queries", "landing_pages"]
# Every table another stage (or the refresh sensor) reads, besides the six.
TABLES = ["catalog_products", "quarantine", "shard_ingests", "product_embeddings", "concept_decompositions", "published_pages", "retired_slugs", "page_refresh_log"]
# What each step reads: the lineage graph is the data flow.
READS = {
    "raw_attributes": set(),
    "catalog_products": set(),
    "curated_vocabulary": {"raw_attributes"},
    "clip_model": {"catalog_products", "raw_attributes", "curated_vocabulary"},
    "product_attribute_scores": {"catalog_products", "product_embeddings", "clip_model", "raw_attributes", "curated_vocabulary"},
    "product_embeddings": {"catalog_products", "clip_model"},
    "collection_queries": {"product_attribute_scores", "raw_attributes", "curated_vocabulary", "catalog_products"},
    "concept_decompositions": {"product_attribute_scores", "curated_vocabulary", "collection_queries"},
    "landing_pages": {"product_attribute_scores", "collection_queries", "concept_decompositions", "catalog_products"},
}
KINDS = {
    "raw_attributes": {"duckdb", "openai"},
    "catalog_products": {"duckdb"},
    "curated_vocabulary": {"duckdb", "openai"},
    "clip_model": {"duckdb", "pytorch"},
    "product_attribute_scores": {"duckdb", "pytorch", "spark"},
    "product_embeddings": {"duckdb", "pytorch", "spark"},
    "collection_queries": {"duckdb", "openai"},
    "concept_decompositions": {"duckdb", "openai", "pytorch"},
    "landing_pages": {"duckdb", "spark"},
    "published_pages": {"duckdb"},
}
# The tables each job materializes (a step's tables are materialized together).
JOB_TABLES = {
    "shard_ingest": {"raw_attributes", "catalog_products", "quarantine", "shard_ingests"},
    "train_model": {"curated_vocabulary", "clip_model"},
    "shard_scoring": {"product_attribute_scores", "product_embeddings"},
    "publish_pages": {"collection_queries", "concept_decompositions", "landing_pages", "published_pages", "retired_slugs", "page_refresh_log"},
}
JOB_TABLES["shard_refresh"] = JOB_TABLES["shard_ingest"] | JOB_TABLES["shard_scoring"]  # pages follow once per batch (automation.py)


def raw(value):
    """A metadata value as given (specs may hold it raw or normalized)."""
    return getattr(value, "schema", getattr(value, "value", value))


def specs_by_name():
    return {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}


def test_code_location_loads_with_the_six_assets_and_the_tables_they_write():
    Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for a in ASSETS for key in a.keys}
    assert set(SIX) | set(TABLES) == keys


def test_every_asset_declares_kinds_owners_description_code_version_and_table_schema():
    specs = specs_by_name()
    for name, spec in specs.items():
        assert spec.kinds and "duckdb" in spec.kinds, name
        assert spec.owners and all(owner.startswith("team:") for owner in spec.owners), name
        assert spec.description and len(spec.description) > 40, name
        assert spec.code_version, name
        schema = raw(spec.metadata["dagster/column_schema"])
        assert isinstance(schema, TableSchema) and schema.columns, name
        assert raw(spec.metadata["dagster/table_name"]) == f"warehouse.main.{name}", name
    for name, kinds in KINDS.items():
        assert specs[name].kinds == kinds, name
    columns = {c.name: c.type for c in raw(specs["catalog_products"].metadata["dagster/column_schema"]).columns}
    assert {"product_id", "shard", "title", "pixel_color", "in_sample"} <= set(columns) and columns["in_sample"] == "Boolean"


def test_every_asset_depends_on_exactly_the_tables_it_reads():
    specs = specs_by_name()
    for name, reads in READS.items():
        assert {dep.asset_key.to_user_string() for dep in specs[name].deps} == reads, name


def test_code_versions_are_readable_from_the_definitions():
    versions = asset_code_versions(defs)
    assert set(versions) == set(SIX) | set(TABLES)
    assert all(isinstance(v, str) and v for v in versions.values()), versions


def test_jobs_materialize_every_table_of_their_steps():
    for job_name, tables in JOB_TABLES.items():
        job = defs.resolve_job_def(job_name)
        assert {key.to_user_string() for key in job.asset_layer.selected_asset_keys} == tables, job_name


def test_partitioning_and_checks():
    by_name = {key.to_user_string(): a for a in ASSETS for key in a.keys}
    for name in ("raw_attributes", "catalog_products", "quarantine", "product_attribute_scores", "product_embeddings"):
        assert isinstance(by_name[name].partitions_def, DynamicPartitionsDefinition)
    for name in ("curated_vocabulary", "clip_model", "collection_queries", "landing_pages", "published_pages"):
        assert by_name[name].partitions_def is None
    checks = {(c.asset_key, c.name) for a in ASSETS for c in a.check_specs}
    assert (AssetKey("landing_pages"), "page_size_bounds") in checks
    assert (AssetKey("clip_model"), "model_beats_prior") in checks
    assert (AssetKey("clip_model"), "heldout_key_precision") in checks
    assert (AssetKey("curated_vocabulary"), "values_per_key_within_bounds") in checks
    blocking = {(c.asset_key.to_user_string(), c.name) for a in ASSETS for c in a.check_specs if c.blocking}
    assert ("clip_model", "heldout_key_precision") in blocking  # a bad model must not make pages
    assert ("product_attribute_scores", "assignment_precision") in blocking
    # Checks of shard assets are evaluated per shard, so each evaluation records its shard.
    for a in ASSETS:
        for check in a.check_specs:
            assert check.partitions_def is by_name[check.asset_key.to_user_string()].partitions_def, check.name


def test_every_publish_table_waits_for_a_batch_of_shard_updates():
    """One publish per batch: every table of both publish steps carries the condition, and
    the sensor targets them all (a multi-asset step runs whole)."""
    from pinlanding_assets.defs.automation import PUBLISH_AFTER_SHARD_UPDATES, publish_after_shard_updates

    specs = specs_by_name()
    for table in JOB_TABLES["publish_pages"]:
        assert specs[table].automation_condition == PUBLISH_AFTER_SHARD_UPDATES, table
    targeted = publish_after_shard_updates.asset_selection.resolve(defs.resolve_asset_graph())
    assert {key.to_user_string() for key in targeted} == JOB_TABLES["publish_pages"]
