"""Ingesting a shard without Dagster: validated products, the teacher's attributes and the
quarantine are stored for the shard alone, and its checks see what was lost."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pinlanding_assets.core.active_sampling import SamplingConfig
from pinlanding_assets.core.catalog import locate_catalog, shard_fingerprints
from pinlanding_assets.core.checks import IngestCheckConfig
from pinlanding_assets.core.extraction import IN_SAMPLE, QUARANTINE_COLUMNS, ExtractionResult, OfflineExtractor
from pinlanding_assets.core.clip_model import ModelSpec
from pinlanding_assets.core.ingest_state import ingested_fingerprints
from pinlanding_assets.core.model_inputs import ModelInputs, image_key
from pinlanding_assets.core.model_registry import REGISTRY_SCHEMA, REGISTRY_TABLE
from pinlanding_assets.core.retraining import record_training_sample
from pinlanding_assets.core.scoring import EMBEDDING_SCHEMA, SCORE_TABLE_SCHEMA
from pinlanding_assets.core.shard_ingest import IngestSettings, ingest_shard, shard_targets
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


def store_scores(warehouse: Warehouse, shard: str, uncertain: set[str], version: str) -> None:
    """Stored scores of a model for every product of the shard: a split colour for the
    products in `uncertain`, a sure one for the rest."""
    ids = warehouse.read("SELECT product_id FROM catalog_products WHERE shard = ?", [shard]).get_column("product_id").to_list()
    rows = []
    for pid in ids:
        black = 0.5 if pid in uncertain else 0.99
        for value, p in (("black", black), ("white", 1 - black)):
            rows.append({"product_id": pid, "key": "color", "value": value, "score": 0.0, "probability": p, "encoder_probability": p, "assigned": False, "shard": shard, "model_version": version})
    warehouse.replace_rows("product_attribute_scores", pl.DataFrame(rows, schema=SCORE_TABLE_SCHEMA), "shard", [shard])


def register_trained_model(warehouse: Warehouse, models: Path, version: str) -> None:
    """A promoted model's registry row and its record of the answers it was trained on."""
    directory = models / version
    directory.mkdir(parents=True)
    record_training_sample(directory, warehouse.read_table("raw_attributes"))
    row = {"version": version, "path": str(directory), "status": "promoted", "reason": None, "created_at": "2026-12-02T00:00:00", "evaluation": "{}"}
    warehouse.upsert(REGISTRY_TABLE, pl.DataFrame([row], schema=REGISTRY_SCHEMA), ["version", "status"])


def test_uncertainty_rounds_read_the_last_models_scores_from_the_warehouse(sample_catalog: Path, tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    catalog = locate_catalog(sample_catalog)  # 120 accessories, 80 footwear, 160 apparel rows
    sampling = SamplingConfig(sampling="uncertainty", seed_size=36, budget=144, rounds=2)  # targets 36, 72, 144
    settings = IngestSettings(sampling=sampling)
    assert shard_targets(catalog, "footwear", sampling) == [8, 16, 32]  # floor(target x 80 / 360)

    seed = ingest_shard(warehouse, catalog, "footwear", settings)
    assert (seed.round.index, seed.round.status, len(seed.round.picked)) == (0, "seed sample", 8)
    stored = set(warehouse.read(f"SELECT product_id FROM catalog_products WHERE shard = 'footwear' AND {IN_SAMPLE}").get_column("product_id"))
    assert stored == set(seed.round.sample) and seed.sample.height == 8 and seed.labeled == 8
    # Ingested again before any model scored it: the same sample.
    assert ingest_shard(warehouse, catalog, "footwear", settings).round.sample == sorted(seed.round.sample)

    # A model trained on the seed scores the shard; it is unsure of some products.
    unlabeled = sorted(set(seed.products.get_column("product_id")) - stored)
    uncertain = set(unlabeled[:5]) | set(unlabeled[-3:])
    register_trained_model(warehouse, tmp_path / "models", "m1")
    store_scores(warehouse, "footwear", uncertain, "m1")
    first = ingest_shard(warehouse, catalog, "footwear", settings).round
    assert (first.index, first.status, len(first.sample)) == (1, "uncertainty picks", 16)
    assert set(first.sample[:8]) == stored and set(first.picked) == uncertain  # the previous sample kept, then the uncertain ones
    assert first.picked_uncertainty == pytest.approx(1.0) and first.pool_uncertainty == pytest.approx(0.02, abs=1e-4)

    # Re-run with the same scores (m1 was not trained on the new labels): nothing new.
    again = ingest_shard(warehouse, catalog, "footwear", settings).round
    assert again.picked == [] and set(again.sample) == set(first.sample) and again.status.startswith("waiting: the stored scores")

    # m2, trained on them, scores the shard: the next round fills the shard's budget.
    register_trained_model(warehouse, tmp_path / "models", "m2")
    store_scores(warehouse, "footwear", set(), "m2")
    second = ingest_shard(warehouse, catalog, "footwear", settings).round
    assert (second.index, len(second.sample), len(second.picked)) == (2, 32, 16) and set(first.sample) <= set(second.sample)
    register_trained_model(warehouse, tmp_path / "models", "m3")
    store_scores(warehouse, "footwear", set(), "m3")
    spent = ingest_shard(warehouse, catalog, "footwear", settings).round
    assert spent.status == "budget spent" and set(spent.sample) == set(second.sample)


def store_embeddings(warehouse: Warehouse, shard: str, version: str, same: set[str]) -> None:
    """Cached embeddings of the shard's products by `version`: the products in `same` share
    one embedding (near-duplicates), every other product has its own axis."""
    ids = sorted(warehouse.read("SELECT product_id FROM catalog_products WHERE shard = ?", [shard]).get_column("product_id").to_list())
    axes = [0 if pid in same else i + 1 for i, pid in enumerate(ids)]
    vectors = [[1.0 if d == axis else 0.0 for d in range(len(ids) + 1)] for axis in axes]
    rows = pl.DataFrame({"model_version": version, "product_id": ids, "image_hash": "", "text_hash": "", "embedding": vectors}, schema=EMBEDDING_SCHEMA)
    warehouse.upsert("product_embeddings", rows, ["model_version", "product_id"])


def test_a_spread_round_in_the_graph_reads_the_cached_embeddings(sample_catalog: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    catalog = locate_catalog(sample_catalog)
    settings = IngestSettings(sampling=SamplingConfig(sampling="uncertainty", seed_size=36, budget=144, rounds=2, diversity_by_type=False, spread_factor=2.0))
    picked = {}
    for cached in (True, False):  # with the scoring model's embeddings cached, and without
        warehouse = Warehouse(tmp_path / f"cached-{cached}.duckdb")
        seed = ingest_shard(warehouse, catalog, "footwear", settings)  # 8 of 80, next target 16
        unlabeled = sorted(set(seed.products.get_column("product_id")) - set(seed.round.sample))
        duplicates, distinct = set(unlabeled[:6]), set(unlabeled[-6:])  # 12 uncertain products, 6 of them one product
        register_trained_model(warehouse, tmp_path / f"models-{cached}", "m1")
        store_scores(warehouse, "footwear", duplicates | distinct, "m1")
        if cached:
            store_embeddings(warehouse, "footwear", "m1", duplicates)
        with caplog.at_level("WARNING"):
            picked[cached] = set(ingest_shard(warehouse, catalog, "footwear", settings).round.picked)
    assert len(picked[True]) == 8 and distinct <= picked[True]
    assert len(duplicates & picked[True]) == 1  # one of the near-duplicates, not several
    # Without them the round is chosen on uncertainty alone, and says so.
    assert picked[False] <= duplicates | distinct and len(duplicates & picked[False]) >= 2
    assert "no cached embedding" in caplog.text


def test_random_sampling_ignores_the_stored_scores(sample_catalog: Path, tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb")
    catalog = locate_catalog(sample_catalog)
    first = ingest_shard(warehouse, catalog, "footwear", IngestSettings())
    register_trained_model(warehouse, tmp_path / "models", "m1")
    store_scores(warehouse, "footwear", set(first.products.get_column("product_id").head(30)), "m1")
    again = ingest_shard(warehouse, catalog, "footwear", IngestSettings())
    assert again.round is None and again.sample.get_column("product_id").to_list() == first.sample.get_column("product_id").to_list()


def test_scoring_space_sums_the_saved_spaces_of_the_scoring_models(tmp_path: Path) -> None:
    import json

    from pinlanding_assets.core.active_sampling import learned_keys
    from pinlanding_assets.core.clip_model import CONFIG_NAME
    from pinlanding_assets.core.shard_ingest import scoring_space

    warehouse = Warehouse(tmp_path / "w.duckdb")
    assert scoring_space(warehouse, ["m1"]) is None  # no registry yet
    saved = {
        "m1": [{"key": "color", "value": "red", "frequency": 3}, {"key": "occasion", "value": "(none)", "frequency": 5}],
        "m2": [{"key": "color", "value": "red", "frequency": 2}, {"key": "occasion", "value": "party", "frequency": 1}],
    }
    for version, attributes in saved.items():
        directory = tmp_path / "models" / version
        directory.mkdir(parents=True)
        (directory / CONFIG_NAME).write_text(json.dumps({"pinlanding": {"attributes": attributes}}))
        row = {"version": version, "path": str(directory), "status": "promoted", "reason": None, "created_at": "2026-12-03T00:00:00", "evaluation": "{}"}
        warehouse.upsert(REGISTRY_TABLE, pl.DataFrame([row], schema=REGISTRY_SCHEMA), ["version", "status"])
    space = scoring_space(warehouse, ["m1", "m2"])
    assert space.sort("key", "value").rows() == [("color", "red", 5), ("occasion", "(none)", 5), ("occasion", "party", 1)]
    assert learned_keys(space, 0.5) == ["color"]  # occasion named for 1 of 6
    # A model record whose checkpoint has no saved config, or an unknown version: not counted.
    (tmp_path / "models" / "m2" / CONFIG_NAME).unlink()
    assert scoring_space(warehouse, ["m1", "m2", "m9"]).height == 2
    assert scoring_space(warehouse, ["m2"]) is None
