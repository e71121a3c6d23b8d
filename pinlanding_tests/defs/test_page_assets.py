"""`collection_queries` + `landing_pages` through Dagster on the sample catalog: the site,
its path in metadata, refresh semantics across two materializations, images changed
after ingest kept off the site, and the same pages from every engine: DuckDB (no Java),
local Spark and Spark Connect.

Scores are made from the catalog's own labels (probability 0.9), so the test needs no model;
one local Spark session serves both materializations and is stopped at the end.
"""

import shutil
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from pinlanding_assets.core.catalog import load_catalog, locate_catalog
from pinlanding_assets.core.evaluation import catalog_label_attributes
from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_assets.defs.collection_assets import collection_queries
from pinlanding_assets.defs.llm_resources import LLMResource
from pinlanding_assets.defs.page_assets import landing_pages
from pinlanding_assets.core.settings import SAMPLE_CATALOG
from pinlanding_assets.defs.resources import CatalogResource, DataHomeResource, SparkResource, spark_resource as project_spark_resource


def vocabulary_from_labels(products: pl.DataFrame) -> pl.DataFrame:
    """A curated vocabulary (the columns later stages read) of every label value: what the
    style concepts are decomposed into."""
    labels = catalog_label_attributes(products)
    counts = labels.group_by("key", "value").agg(pl.col("product_id").n_unique().cast(pl.Int64).alias("frequency"))
    return counts.with_columns(pl.col("value").alias("canonical"), pl.lit("kept").alias("status")).sort("key", "value")


def scores_from_labels(products: pl.DataFrame, drop_products: set[str] = frozenset()) -> pl.DataFrame:
    labels = catalog_label_attributes(products).filter(~pl.col("product_id").is_in(list(drop_products)))
    return labels.with_columns(
        pl.lit(0.0, pl.Float32).alias("score"), pl.lit(0.9, pl.Float32).alias("probability"), pl.lit(True).alias("assigned")
    )


@pytest.fixture(scope="module")
def spark_resource():
    resource = SparkResource(
        spark_config={"spark.master": "local[1]", "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2", "spark.ui.showConsoleProgress": "false"}
    )
    yield resource
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


def run_pages(home: Path, spark_resource, instance, catalog: Path = SAMPLE_CATALOG, pages_config: dict | None = None, title_writer: str = "auto") -> dict:
    ops = {"collection_queries": {"config": {"title_writer": title_writer}}}
    if pages_config:
        ops["landing_pages"] = {"config": pages_config}
    result = materialize(
        [collection_queries, landing_pages],
        resources={"data_home": DataHomeResource(home=str(home)), "spark": spark_resource, "llm": LLMResource(extractor="offline"), "catalog": CatalogResource(location=str(catalog))},
        instance=instance,
        run_config={"ops": ops},
    )
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    [materialization] = [m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == "landing_pages"]
    return {k: v.value for k, v in materialization.materialization.metadata.items()}


def test_pages_site_and_refresh(sample_catalog, tmp_path, spark_resource, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # "auto" must pick the template writer
    home = tmp_path / "home"
    warehouse = Warehouse(home / "warehouse.duckdb")
    products = load_catalog(locate_catalog(sample_catalog)).products
    warehouse.replace_table("catalog_products", products)
    warehouse.replace_table("product_attribute_scores", scores_from_labels(products))
    warehouse.replace_table("curated_vocabulary", vocabulary_from_labels(products))

    with DagsterInstance.ephemeral() as instance:
        first = run_pages(home, spark_resource, instance)
        n_pages = first["pages"]
        assert n_pages >= 10
        assert first["pages_added"] == n_pages and first["pages_removed"] == 0 and first["retired_slugs"] == 0
        site_index = Path(first["site"])
        assert site_index == home / "site" / "index.html" and site_index.is_file()
        assert (home / "site").is_symlink() and first["site_url"] == site_index.as_uri()  # the live link, not a build pruned later
        rendered = [p for p in (home / "site" / "pages").glob("*.html") if 'http-equiv="refresh"' not in p.read_text()]
        assert len(rendered) == n_pages  # and a redirect page for each slug merged into a near-duplicate
        assert first["site_redirects"] == first["pages_merged"] == first["quality_pages"]["merged"]
        # The page-quality report, for a person to look at.
        assert first["quality_pages"]["published"] == n_pages and first["quality_pages"]["matched"] >= n_pages
        assert first["quality_pages"]["indexed"] + first["quality_pages"]["noindex (thin)"] == n_pages
        assert first["quality_p_at_10"]["mean"] == 1.0 and sum(first["quality_p_at_10"]["histogram"].values()) == first["quality_p_at_10"]["pages_checked"]
        assert 0 < first["quality_coverage"]["share_on_a_page"] <= 1 and first["quality_worst_pages"]
        assert first["precision_at_10"] == 1.0  # pages built from the labels themselves
        collections = warehouse.read_table("collection_queries")
        assert set(collections.get_column("writer").unique().to_list()) == {"template"}
        # Style concepts (data/style_concepts.yaml, offline MiniLM): a page each, showing why.
        concepts = warehouse.read_table("concept_decompositions")
        kept = concepts.filter(pl.col("status") == "kept")
        assert kept.height and set(kept.get_column("decomposer")) == {"minilm"}
        concept_slugs = set(warehouse.read("SELECT DISTINCT slug FROM landing_pages").get_column("slug")) & set(kept.get_column("concept_slug"))
        assert first["concept_pages"] == len(concept_slugs) >= 2
        assert first["concept_precision_at_10"] == 1.0  # labels are the scores: every product carries its combination
        assert "office-essentials" in concept_slugs
        office = (home / "site" / "pages" / "office-essentials.html").read_text()
        assert "Why these products" in office and "formal" in office
        published = warehouse.read_table("published_pages").filter(pl.col("slug") == "office-essentials")
        assert published.height == 1 and published.get_column("title")[0] == "Office Essentials"
        index = (home / "site" / "index.html").read_text()
        assert "Style Concepts" in index and "pages/office-essentials.html" in index

        # Refresh: the dresses lose their scores, so every dress page goes and must redirect.
        labels = catalog_label_attributes(products)
        dresses = set(labels.filter((pl.col("key") == "product_type") & (pl.col("value") == "dress")).get_column("product_id").to_list())
        # every page of dresses only: the mined dress pages, and a concept page whose combinations all name dresses
        pages_now = warehouse.read_table("landing_pages")
        dress_slugs = set(pages_now.group_by("slug").agg(pl.col("product_id").is_in(sorted(dresses)).all().alias("only")).filter("only").get_column("slug").to_list())
        assert dresses and dress_slugs and {s for s in dress_slugs if "dress" in s}
        warehouse.replace_table("product_attribute_scores", scores_from_labels(products, dresses))
        second = run_pages(home, spark_resource, instance)

    assert second["pages_removed"] == len(dress_slugs)
    assert second["pages_unchanged"] >= 1
    assert second["pages"] == n_pages - len(dress_slugs) + second["pages_added"]
    retired = warehouse.read_table("retired_slugs")
    assert set(retired.get_column("slug").to_list()) == dress_slugs
    for slug in dress_slugs:
        redirect = (home / "site" / "pages" / f"{slug}.html").read_text()
        assert 'http-equiv="refresh"' in redirect
    log = warehouse.read_table("page_refresh_log")
    assert log.get_column("refresh_id").n_unique() == 2
    assert set(log.filter(pl.col("change") == "removed").get_column("slug").to_list()) == dress_slugs
    assert Path(second["parquet"]).is_file()


def test_images_changed_after_ingest_are_quarantined_and_never_published(sample_catalog, tmp_path, spark_resource, monkeypatch) -> None:
    """Issue 12 item 6: a validated image later replaced by a link to a file holding an API
    key, and one rewritten with other bytes: neither file reaches the site, both products
    are quarantined (stage publish) and left off their pages in every output."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    catalog = tmp_path / "catalog"
    shutil.copytree(sample_catalog, catalog)
    home = tmp_path / "home"
    warehouse = Warehouse(home / "warehouse.duckdb")
    products = load_catalog(locate_catalog(catalog)).products
    warehouse.replace_table("catalog_products", products)
    warehouse.replace_table("product_attribute_scores", scores_from_labels(products))
    secret = b"OPENAI_API_KEY=sk-live-do-not-publish-0123456789"
    (tmp_path / "credentials.env").write_bytes(secret)
    (catalog / "images" / "s0000.jpg").unlink()
    (catalog / "images" / "s0000.jpg").symlink_to(tmp_path / "credentials.env")
    (catalog / "images" / "s0002.jpg").write_bytes((catalog / "images" / "s0003.jpg").read_bytes())

    with DagsterInstance.ephemeral() as instance:
        metadata = run_pages(home, spark_resource, instance, catalog)

    site = home / "site"
    files = [p for p in site.rglob("*") if p.is_file()]
    assert files and not any(secret in p.read_bytes() for p in files), "the linked secret was published"
    feed = (site / "feed.json").read_text()
    assert '"s0000"' not in feed and '"s0002"' not in feed
    quarantine = warehouse.read("SELECT product_id, reason FROM quarantine WHERE stage = 'publish' ORDER BY product_id")
    assert quarantine.rows() == [("s0000", "image is a symlink"), ("s0002", "image changed since ingest")]
    assert metadata["site_withheld_products"] == 2 and metadata["site_withheld_reasons"] == {"image changed since ingest": 1, "image is a symlink": 1}
    withheld = {"s0000", "s0002"}
    assert not withheld & set(warehouse.read_table("landing_pages").get_column("product_id"))
    assert not withheld & set(pl.read_parquet(metadata["parquet"]).get_column("product_id"))
    published = warehouse.read_table("published_pages").explode("products").get_column("products")
    assert published.len() > 0 and not withheld & set(published)


def seed_scores(home: Path, catalog: Path) -> Warehouse:
    warehouse = Warehouse(home / "warehouse.duckdb")
    products = load_catalog(locate_catalog(catalog)).products
    warehouse.replace_table("catalog_products", products)
    warehouse.replace_table("product_attribute_scores", scores_from_labels(products))
    warehouse.replace_table("curated_vocabulary", vocabulary_from_labels(products))
    return warehouse


def engine_pages(home: Path, spark, engine: str, **pages_config) -> tuple[dict, pl.DataFrame]:
    warehouse = seed_scores(home, SAMPLE_CATALOG)
    with DagsterInstance.ephemeral() as instance:
        metadata = run_pages(home, spark, instance, pages_config={"engine": engine, **pages_config}, title_writer="template")
    return metadata, warehouse.read_table("landing_pages").sort("slug", "rank")


@pytest.fixture(scope="module")
def duckdb_engine_pages(tmp_path_factory) -> tuple[dict, pl.DataFrame]:
    """Issue 13 item 5: pages with `engine: duckdb`. The spark resource names a master that
    cannot exist, so the run would fail if the step touched Spark at all."""
    unusable = SparkResource(spark_config={"spark.master": "no-such-master://nowhere"})
    return engine_pages(tmp_path_factory.mktemp("duckdb-engine"), unusable, "duckdb")


def test_duckdb_engine_publishes_the_pages_spark_publishes(duckdb_engine_pages, tmp_path, spark_resource) -> None:
    metadata, pages = duckdb_engine_pages
    assert metadata["engine"] == "duckdb" and metadata["pages"] >= 10 and Path(metadata["site"]).is_file()
    # Spark reading its inputs from "shared storage" given as a URI: Path() made
    # file:///x file:/x (a relative folder "file:" was written, Spark found nothing).
    shared = tmp_path / "shared"
    on_spark_metadata, on_spark = engine_pages(tmp_path / "home", spark_resource, "spark", spark_input_dir=shared.as_uri())
    assert on_spark_metadata["engine"] == "spark"
    assert on_spark.equals(pages)
    assert metadata["concept_pages"] == on_spark_metadata["concept_pages"] >= 2  # concept pages too, on both engines
    assert shared.is_dir() and not list(shared.iterdir()), "the run's input folder was left behind"
    assert not Path("file:").exists()


def test_spark_connect_engine_publishes_the_same_pages(duckdb_engine_pages, tmp_path, spark_connect_url) -> None:
    """Issue 13 item 4: the asset on a Spark Connect session (`SPARK_REMOTE`): no
    `sparkContext` call on the way, inputs sent as Arrow data."""
    _, pages = duckdb_engine_pages
    connect = project_spark_resource(home=str(tmp_path / "home"), remote=spark_connect_url)
    assert "spark.master" not in connect.spark_config
    metadata, on_connect = engine_pages(tmp_path / "home", connect, "spark")
    assert metadata["engine"] == "spark" and on_connect.equals(pages)


def test_spark_remote_replaces_the_master(monkeypatch) -> None:
    monkeypatch.setenv("PINLANDING_SPARK_MASTER", "spark://127.0.0.1:7077")
    monkeypatch.setenv("SPARK_REMOTE", "sc://connect.example:15002")
    monkeypatch.delenv("PINLANDING_SPARK_SHUFFLE_PARTITIONS", raising=False)
    assert project_spark_resource(home="/tmp/h").spark_config == {
        "spark.remote": "sc://connect.example:15002", "spark.sql.shuffle.partitions": "8", "spark.sql.execution.arrow.pyspark.enabled": "true"
    }
    monkeypatch.delenv("SPARK_REMOTE")
    classic = project_spark_resource(home="/tmp/h").spark_config
    assert classic["spark.master"] == "spark://127.0.0.1:7077" and "spark.remote" not in classic and classic["spark.log.level"] == "WARN"


def test_an_unknown_engine_is_refused_clearly(tmp_path, spark_resource) -> None:
    seed_scores(tmp_path / "home", SAMPLE_CATALOG)
    with DagsterInstance.ephemeral() as instance, pytest.raises(Exception) as raised:
        run_pages(tmp_path / "home", spark_resource, instance, pages_config={"engine": "polars"}, title_writer="template")
    assert "engine must be one of spark, duckdb, got 'polars'" in str(getattr(raised.value, "user_exception", raised.value))


def test_collection_queries_with_the_llm_writer(sample_catalog, tmp_path, monkeypatch) -> None:
    from pinlanding_tests.fake_openai_server import FakeOpenAIServer, PlausibleModel

    def model(body: dict) -> dict:
        stage = body["response_format"]["json_schema"]["name"]
        if stage.startswith("concept_"):  # style concepts: plausible, one invented value each
            return PlausibleModel()(body)
        if stage == "collection_validation":
            return {"valid": True, "reason": "ok"}
        if stage == "collection_title":
            return {"title": "Amazing Deals"}  # invented words: the guard must replace it
        return {"score": 5, "reason": "ok"}

    home = tmp_path / "home"
    warehouse = Warehouse(home / "warehouse.duckdb")
    products = load_catalog(locate_catalog(sample_catalog)).products
    warehouse.replace_table("product_attribute_scores", scores_from_labels(products))
    warehouse.replace_table("curated_vocabulary", vocabulary_from_labels(products))
    monkeypatch.setenv("PINLANDING_TEST_LLM_KEY", "test")
    with FakeOpenAIServer(responder=model) as server:
        llm = LLMResource(base_url=server.base_url, api_key_env="PINLANDING_TEST_LLM_KEY", model="fake-llm", max_retries=0)
        result = materialize(
            [collection_queries],
            resources={"data_home": DataHomeResource(home=str(home)), "llm": llm, "catalog": CatalogResource(location=str(SAMPLE_CATALOG))},
            instance=DagsterInstance.ephemeral(),
            run_config={"ops": {"collection_queries": {"config": {"min_support": 40, "title_writer": "llm"}}}},  # few calls: a fast test
        )
        calls = server.request_count()
    assert result.success
    metadata, concept_metadata = ({k: v.value for k, v in e.materialization.metadata.items()} for e in result.get_asset_materialization_events())
    # every call counted once: the titles' client and the concepts' (one per concept, one for proposals)
    assert metadata["writer"] == "llm" and metadata["llm_calls_made"] + concept_metadata["llm_calls_made"] == calls > 0
    assert concept_metadata["llm_calls_made"] >= concept_metadata["concepts"] + 1
    collections = warehouse.read_table("collection_queries")
    kept = collections.filter(pl.col("status") == "kept")
    assert kept.height > 0 and "Amazing Deals" not in kept.get_column("title").to_list()
    assert all(w.startswith("llm+template-title") for w in kept.get_column("writer").to_list())
    # The style concepts went to the LLM too: decomposed, validated, and one proposed.
    concepts = warehouse.read_table("concept_decompositions")
    assert set(concepts.get_column("decomposer")) == {"llm"}
    assert concepts.filter(pl.col("status") == "kept").height > 0
    invented = concepts.filter(pl.col("reason").str.contains("cashmere", literal=True))
    assert invented.height and set(invented.get_column("status")) == {"rejected"}
    assert "weekend sport" in concepts.filter(pl.col("source") == "llm").get_column("concept").to_list()
