"""Ingesting a shard without Dagster: validated products, the teacher's attributes and the
quarantine are stored for the shard alone, and its checks see what was lost."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pinlanding_assets.core.catalog import locate_catalog, shard_fingerprints
from pinlanding_assets.core.checks import IngestCheckConfig
from pinlanding_assets.core.extraction import IN_SAMPLE, QUARANTINE_COLUMNS, ExtractionResult, OfflineExtractor
from pinlanding_assets.core.clip_model import ModelSpec
from pinlanding_assets.core.ingest_state import ingested_fingerprints
from pinlanding_assets.core.model_inputs import ModelInputs, image_key
from pinlanding_assets.core.shard_ingest import IngestSettings, ingest_shard
from pinlanding_assets.core.warehouse import Warehouse


class ForgetfulTeacher:
    """The offline teacher, but the first sampled products get no answer: half of them are
    quarantined with a reason, the other half just missing."""

    name = "forgetful"
    prompt_version = "test"

    def __init__(self, offline: OfflineExtractor, dropped: int):
        self.offline = offline
        self.dropped = dropped

    def extract(self, products: pl.DataFrame) -> ExtractionResult:
        answered = self.offline.extract(products)
        dropped = products.get_column("product_id").head(self.dropped).to_list()
        refused = pl.DataFrame({"product_id": dropped[: self.dropped // 2], "reason": "no answer", "detail": ""}, schema=QUARANTINE_COLUMNS)
        return ExtractionResult(answered.attributes.filter(~pl.col("product_id").is_in(dropped)), refused)


def test_a_shard_is_stored_with_its_sample_attributes_and_fingerprint(sample_catalog: Path, tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    catalog = locate_catalog(sample_catalog)
    ingest = ingest_shard(warehouse, catalog, "footwear", IngestSettings())

    products = warehouse.read_table("catalog_products")
    assert set(products.get_column("shard")) == {"footwear"} and products.height == ingest.products.height == 80
    assert products.get_column(IN_SAMPLE).sum() == ingest.sample.height == 50  # SampleSpec's minimum
    attributes = warehouse.read_table("raw_attributes")
    assert set(attributes.get_column("extractor")) == {"offline"} and attributes.height == ingest.attributes.height > 0
    assert ingested_fingerprints(warehouse) == {"footwear": shard_fingerprints(catalog)["footwear"]}
    assert ingest.teacher.name == "offline" and ingest.labeled == 50 and ingest.coverage == 1.0
    assert ingest.lost_products() == [] and ingest.quarantine_share == 0.0
    assert all(o.passed for o in ingest.checks(IngestCheckConfig()))

    # Another shard leaves this one's rows alone.
    ingest_shard(warehouse, catalog, "accessories", IngestSettings())
    assert warehouse.read("SELECT count(*) FROM catalog_products WHERE shard = 'footwear'").item() == 80


def test_unanswered_products_are_quarantined_or_reported_lost(sample_catalog: Path, tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    ingest = ingest_shard(warehouse, locate_catalog(sample_catalog), "footwear", IngestSettings(), choose_teacher=lambda offline, products: ForgetfulTeacher(offline, 10))
    assert ingest.labeled == 40 and ingest.coverage == 0.8
    assert len(ingest.lost_products()) == 5
    quarantine = warehouse.read_table("quarantine")
    assert quarantine.filter(pl.col("stage") == "extraction").height == 5 and set(quarantine.get_column("shard")) == {"footwear"}
    checks = {o.name: o for o in ingest.checks(IngestCheckConfig())}
    assert not checks["attribute_coverage"].passed and not checks["sample_accounted_for"].passed
    assert checks["sample_accounted_for"].metadata["lost_products"] == 5 and checks["quarantine_share"].passed


def test_ingest_prepares_the_towers_inputs_of_every_valid_product(sample_catalog: Path, tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    inputs = ModelInputs(tmp_path / "model-inputs")
    ingest = ingest_shard(warehouse, locate_catalog(sample_catalog), "footwear", IngestSettings(), model_inputs=inputs)
    assert ingest.prepared.products == ingest.products.height == 80
    assert ingest.prepared.images_decoded == 80 and ingest.prepared.images_left_to_scoring == 0
    assert ingest.prepared.titles_tokenized == ingest.products.get_column("title").n_unique()
    images, missing = inputs.images.chunks.find([image_key(p) for p in ingest.products.get_column("image_path")])
    assert missing == [] and images.shape == (80, 3, *ModelSpec.image_size)

    again = ingest_shard(warehouse, locate_catalog(sample_catalog), "footwear", IngestSettings(), model_inputs=ModelInputs(tmp_path / "model-inputs"))
    assert (again.prepared.images_decoded, again.prepared.titles_tokenized) == (0, 0)  # a re-run prepares nothing twice
