"""Gates judge on enough evidence; the model registry only ever serves promoted models."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from pinlanding_assets.core.clip_model import SavedModel
from pinlanding_assets.core.gates import AssignmentCheck, check_assignments, proportion_gate, wilson_bounds
from pinlanding_assets.core.model_registry import ModelRegistry, NoPromotedModel
from pinlanding_assets.core.warehouse import Warehouse


def test_wilson_bounds_are_wide_on_few_items() -> None:
    low, high = wilson_bounds(1, 2)
    assert low < 0.1 and high > 0.9
    low, high = wilson_bounds(90, 100)
    assert 0.82 < low < 0.9 < high < 0.95


@pytest.mark.parametrize(
    ("right", "checked", "passed", "blocking", "says"),
    [
        (1, 2, False, False, "not enough evidence"),  # the tiny free-items shard: 0.5 on 2 checks warns
        (15, 20, False, False, "too little evidence to block"),  # 0.75 on 20: could well be 0.8
        (300, 500, False, True, "is below 0.8"),  # 0.6 on 500: surely below
        (450, 500, True, True, "0.900 on 500"),
    ],
)
def test_a_precision_gate_blocks_only_on_enough_evidence(right: int, checked: int, passed: bool, blocking: bool, says: str) -> None:
    gate = AssignmentCheck(right, checked, "catalog labels").gate(threshold=0.8, min_checked=5)
    assert (gate.passed, gate.blocking) == (passed, blocking)
    assert says in gate.description and "catalog labels" in gate.description
    assert gate.blocks == (not passed and blocking)


def test_an_unmeasurable_value_warns_and_says_why() -> None:
    gate = proportion_gate("x", 0, 0, 0.8, 20, "precision")
    assert not gate.passed and not gate.blocking and gate.value is None
    assert "not enough evidence" in gate.description


def saved(tmp_path: Path, version: str) -> SavedModel:
    directory = tmp_path / "staging" / version
    directory.mkdir(parents=True)
    (directory / "open_clip_model.safetensors").write_bytes(version.encode())
    return SavedModel(directory, version)


def test_the_registry_serves_only_promoted_models(tmp_path: Path) -> None:
    registry = ModelRegistry(Warehouse(tmp_path / "w.duckdb"), tmp_path / "models")
    with pytest.raises(NoPromotedModel, match="materialize clip_model"):
        registry.current()
    bad = registry.reject(saved(tmp_path, "bad1"), {}, "model_beats_prior: below the prior")
    assert bad.path == tmp_path / "models" / "clip_model" / "rejected" / "bad1" and bad.path.is_dir()
    with pytest.raises(NoPromotedModel, match="last training was rejected: model_beats_prior"):
        registry.current()
    good = registry.promote(saved(tmp_path, "good1"), {"catalog labels (lenient)": {}})
    registry.reject(saved(tmp_path, "bad2"), {}, "heldout_key_accuracy")
    current = registry.current()
    assert (current.version, current.path) == ("good1", good.path)
    assert registry.history().get_column("status").to_list() == ["rejected", "promoted", "rejected"]
    assert registry.staging_dir() != registry.staging_dir()  # one staging folder per training run


def test_a_shard_is_judged_against_every_value_the_catalog_labels_name() -> None:
    """A shard whose labels all say "yellow" is still judged on the "black" it was assigned
    when other shards' labels name black: the gate's domain is the whole catalog's."""

    vocabulary = pl.DataFrame({"key": ["color"] * 3, "value": ["black", "yellow", "teal"], "canonical": ["black", "yellow", "teal"], "frequency": [10] * 3, "status": ["kept"] * 3})
    products = pl.DataFrame({"product_id": ["a", "b", "c"], "label_color": ["Yellow", "Yellow", "Yellow"]})
    assigned = pl.DataFrame({"product_id": ["a", "b", "c"], "key": ["color"] * 3, "value": ["black", "black", "yellow"]})
    alone = check_assignments(assigned, products, pl.DataFrame(), vocabulary, {})
    assert (alone.right, alone.checked, alone.not_comparable) == (1, 1, 2)  # only "yellow" looks checkable
    domain = pl.DataFrame({"key": ["color", "color"], "value": ["yellow", "black"]})
    judged = check_assignments(assigned, products, pl.DataFrame(), vocabulary, {}, label_domain=domain)
    assert (judged.right, judged.checked, judged.not_comparable) == (1, 3, 0)  # "teal" was never assigned


def test_a_label_no_value_names_cannot_judge_the_product() -> None:
    """Kaggle's `free-items` shard labels watches and sarees "Free Gifts": no content value
    names that, so what the model says such a product is goes unchecked (not counted wrong)."""
    vocabulary = pl.DataFrame({"key": ["product_type"] * 2, "value": ["watch", "saree"], "canonical": ["watch", "saree"], "frequency": [10] * 2, "status": ["kept"] * 2})
    products = pl.DataFrame({"product_id": ["a", "b", "c"], "label_product_type": ["Free Gifts", "Free Gifts", "Watches"]})
    assigned = pl.DataFrame({"product_id": ["a", "b", "c"], "key": ["product_type"] * 3, "value": ["watch", "saree", "watch"]})
    check = check_assignments(assigned, products, pl.DataFrame(), vocabulary, {}, label_domain=pl.DataFrame({"key": ["product_type"] * 2, "value": ["free gifts", "watches"]}))
    assert (check.right, check.checked, check.not_comparable) == (1, 1, 2)
