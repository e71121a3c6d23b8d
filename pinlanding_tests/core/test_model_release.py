"""Releasing a model without Dagster: which products judge it, and only a candidate that no
gate blocks is promoted (scoring never sees a rejected one)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from pinlanding_assets.core.catalog import locate_catalog
from pinlanding_assets.core.clip_model import ModelSpec, SavedModel
from pinlanding_assets.core.gates import GateConfig, GateResult
from pinlanding_assets.core.model_fitting import AssignmentConfig, HeldoutConfig, silver_test_share
from pinlanding_assets.core.model_registry import ModelRegistry
from pinlanding_assets.core.model_release import ModelSettings, register_candidate, release_model
from pinlanding_assets.core.shard_ingest import IngestSettings, ingest_shard
from pinlanding_assets.core.training import TrainingConfig
from pinlanding_assets.core.vocabulary import curate_vocabulary
from pinlanding_assets.core.warehouse import Warehouse

OPEN_GATES = GateConfig(min_recall_at_1=0.0, min_lift_over_prior=-1.0, min_key_top1=0.0, min_key_precision=0.0)


def test_the_silver_share_is_held_out_only_when_the_catalog_lacks_labels_of_a_gated_key() -> None:
    labeled = pl.DataFrame({"product_id": ["a", "b"], "label_product_type": ["Shirts", None], "label_color": [None, "Red"]})
    assert silver_test_share(labeled, ("product_type", "color"), HeldoutConfig()) == 0.0
    assert silver_test_share(labeled.drop("label_color"), ("product_type", "color"), HeldoutConfig(silver_share=0.3)) == 0.3
    empty_labels = labeled.with_columns(pl.lit(None, pl.String).alias("label_color"))
    assert silver_test_share(empty_labels, ("product_type", "color"), HeldoutConfig()) == HeldoutConfig.silver_share


def candidate(tmp_path: Path, version: str) -> SimpleNamespace:
    """What registering reads of a fitted model: its saved checkpoint and its evaluations."""
    directory = tmp_path / "staging" / version
    directory.mkdir(parents=True)
    (directory / "open_clip_model.safetensors").write_bytes(version.encode())
    return SimpleNamespace(saved=SavedModel(directory, version), evaluation_record=lambda: {"catalog labels (lenient)": {}})


def test_a_candidate_is_rejected_with_the_gates_that_block_it(tmp_path: Path) -> None:
    registry = ModelRegistry(Warehouse(tmp_path / "w.duckdb"), tmp_path / "models")
    warns = GateResult("heldout_key_accuracy", False, False, None, 0.6, "not enough evidence")
    blocks = GateResult("model_beats_prior", False, True, 0.1, 0.5, "R@1 0.100 is below 0.5")
    passes = GateResult("heldout_key_precision", True, True, 0.9, 0.8, "fine")

    promoted = register_candidate(registry, candidate(tmp_path, "v1"), [warns, passes])  # a warning does not block
    assert promoted.status == "promoted" and registry.current().version == "v1"
    rejected = register_candidate(registry, candidate(tmp_path, "v2"), [warns, blocks, passes])
    assert (rejected.status, rejected.reason) == ("rejected", "model_beats_prior: R@1 0.100 is below 0.5")
    assert rejected.path == tmp_path / "models" / "clip_model" / "rejected" / "v2"
    assert registry.current().version == "v1"


@pytest.fixture(scope="module")
def ingested(sample_catalog: Path, tmp_path_factory) -> tuple[Warehouse, Path]:
    """The sample catalog's shards ingested with the offline teacher, and curated."""
    root = tmp_path_factory.mktemp("release")
    warehouse = Warehouse(root / "w.duckdb")
    for shard in ("apparel", "accessories", "footwear"):
        ingest_shard(warehouse, locate_catalog(sample_catalog), shard, IngestSettings())
    warehouse.replace_table("curated_vocabulary", curate_vocabulary(warehouse.read_table("raw_attributes")))
    return warehouse, root


def test_a_released_model_is_judged_on_labeled_products_outside_the_sample(ingested) -> None:
    warehouse, root = ingested
    products = warehouse.read_table("catalog_products")
    heldout = HeldoutConfig(eval_max_products=60, baseline_max_products=20)
    training = TrainingConfig(epochs=1, min_steps=4, batch_size=64, seed=3, test_share=silver_test_share(products, OPEN_GATES.gated_keys, heldout))
    assert training.test_share == 0.0  # the sample catalog has labels: no silver split
    registry = ModelRegistry(warehouse, root / "models")
    release = release_model(
        products, warehouse.read_table("raw_attributes"), warehouse.read_table("curated_vocabulary"),
        ModelSettings(ModelSpec(), training, AssignmentConfig(), OPEN_GATES, heldout), registry, IngestSettings().teacher_inputs,
    )
    assert release.registered.status == "promoted" and registry.current().version == release.fitted.saved.version
    assert [g.name for g in release.gates] == ["model_beats_prior", "heldout_key_accuracy", "heldout_key_precision"]
    # Held out: at most eval_max_products products outside the sample, those with catalog labels.
    in_sample = set(products.filter(pl.col("in_sample")).get_column("product_id"))
    assert 0 < release.inputs.heldout.height <= 60 and not in_sample & set(release.inputs.heldout.get_column("product_id"))
    assert release.fitted.primary == "catalog labels (lenient)"
    assert [p.name for p in release.plots] == ["precision_recall", "confusion_summary"]
    for plot in release.plots:
        assert plot.path.parent == release.registered.path / "plots" and plot.path.read_bytes().startswith(b"\x89PNG")
        assert plot.markdown.startswith(f"![{plot.name}](data:image/png;base64,")
    stored = warehouse.read_table("clip_model").row(0, named=True)
    assert stored["status"] == "promoted" and "catalog labels (lenient)" in stored["evaluation"]
