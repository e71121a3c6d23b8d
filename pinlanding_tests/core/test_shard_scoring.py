"""Scoring a shard without Dagster: the promoted model scores it, the new embeddings join
the cache, and scores that fail their gate never replace the shard's last good rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pinlanding_assets.core.catalog import load_catalog, locate_catalog
from pinlanding_assets.core.clip_model import ModelSpec, build_encoder, save_encoder
from pinlanding_assets.core.gates import ShardGateConfig
from pinlanding_assets.core.model_registry import ModelRegistry, NoPromotedModel
from pinlanding_assets.core.scoring import Calibration, ScoringSettings
from pinlanding_assets.core.shard_scoring import score_shard
from pinlanding_assets.core.training import ABSENT, AttributeSpace
from pinlanding_assets.core.warehouse import Warehouse

OPEN = ShardGateConfig(min_assignment_precision=0.0, min_checked=1)
SETTINGS = ScoringSettings(batch_size=16)


@pytest.fixture
def home(sample_catalog: Path, tmp_path: Path) -> tuple[Warehouse, Path]:
    """A warehouse with 40 apparel products, a vocabulary of colours, and an untrained
    encoder promoted in the registry: the mechanics, not the accuracy."""
    warehouse = Warehouse(tmp_path / "w.duckdb")
    products = load_catalog(locate_catalog(sample_catalog), shards=["apparel"]).products.head(40)
    warehouse.replace_table("catalog_products", products)
    colours = ["black", "white", "blue"]
    warehouse.replace_table("curated_vocabulary", pl.DataFrame({"key": "color", "value": colours, "canonical": colours, "frequency": 10, "status": "kept"}))
    space = AttributeSpace(pl.DataFrame({"key": ["color"] * 3 + ["pattern"] * 2, "value": [*colours, "striped", ABSENT], "frequency": [30, 20, 25, 5, 45]}))
    extra = {
        "attributes": space.attributes.to_dicts(),
        "calibration": Calibration(20.0, 0.5, tuple(space.log_prior())).to_dict(),
        "thresholds": {"color": 0.0, "pattern": 0.0},
        "max_values_per_key": 1,
        "evidence_phrases": [["color", c, c] for c in colours],
    }
    models = tmp_path / "models"
    saved = save_encoder(build_encoder(ModelSpec(), seed=0), tmp_path / "staging" / "ckpt", extra)
    ModelRegistry(warehouse, models).promote(saved, {})
    return warehouse, models


def test_without_a_promoted_model_nothing_is_scored(tmp_path: Path) -> None:
    with pytest.raises(NoPromotedModel):
        score_shard(Warehouse(tmp_path / "w.duckdb"), tmp_path / "models", "apparel", SETTINGS, OPEN)


def test_scores_are_stored_when_the_gate_passes_and_kept_when_it_blocks(home) -> None:
    warehouse, models = home
    scored = score_shard(warehouse, models, "apparel", SETTINGS, OPEN)
    assert scored.published and scored.products == 40 and scored.scored.encoded == 40
    stored = warehouse.read_table("product_attribute_scores")
    assert stored.height == 40 * 5 and set(stored.get_column("shard")) == {"apparel"} and set(stored.get_column("model_version")) == {scored.model.version}
    assert warehouse.read_table("product_embeddings").height == 40
    assert sum(scored.assigned_per_key().values()) == scored.assigned.height > 0
    assert scored.check.source == "catalog labels" and scored.check.checked > 0
    assert scored.gate.as_check().metadata["value"] == scored.check.precision

    # The catalog's labels now contradict every assigned colour: the gate blocks, the
    # shard keeps the scores stored before, and the cached embeddings are reused.
    assigned = dict(scored.assigned.filter(pl.col("key") == "color").select("product_id", "value").iter_rows())
    products = warehouse.read_table("catalog_products")
    wrong = products.with_columns(pl.col("product_id").replace_strict(assigned, default="black").replace({"black": "white", "white": "black", "blue": "black"}).alias("label_color"))
    warehouse.replace_table("catalog_products", wrong)
    blocked = score_shard(warehouse, models, "apparel", SETTINGS, ShardGateConfig(min_assignment_precision=0.8, min_checked=5))
    assert not blocked.published and blocked.gate.blocks and blocked.check.precision == 0.0
    assert blocked.scored.encoded == 0 and blocked.scored.reused == 40
    assert warehouse.read_table("product_attribute_scores").equals(stored)


def test_an_unknown_engine_is_refused(home) -> None:
    warehouse, models = home
    with pytest.raises(ValueError, match="engine must be 'local' or 'spark', got 'gpu'"):
        score_shard(warehouse, models, "apparel", ScoringSettings(engine="gpu"), OPEN)
