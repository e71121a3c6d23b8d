"""`clip_model` through Dagster on the sample catalog: evaluation, comparisons, calibration
ablation, thresholds, plots in metadata, checkpoint in open_clip's local-dir layout."""

import shutil
from pathlib import Path

import open_clip
import pytest
from dagster import DagsterInstance

from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_assets.definitions import build_definitions
from pinlanding_assets.cli import shipped_instance_settings

from pinlanding_tests.offline_resources import offline_resources

# Short training: the mechanics, not the accuracy (the benchmark measures that).
FAST_MODEL_CONFIG = {"epochs": 2, "min_steps": 8, "batch_size": 64, "eval_max_products": 120, "baseline_max_products": 60, "min_recall_at_1": 0.0, "min_lift_over_prior": -1.0, "min_key_top1": 0.0, "min_key_precision": 0.0}


class TrainedHome:
    """A data home with the sample catalog ingested and a model trained (one per session)."""

    def __init__(self, root: Path):
        self.catalog = root / "catalog"
        shutil.copytree(Path(__file__).resolve().parents[2] / "data" / "sample_catalog", self.catalog)
        self.home = root / "home"
        self.resources = offline_resources(self.home, self.catalog)
        self.defs = build_definitions(self.resources)
        self.instance = DagsterInstance.ephemeral(settings=shipped_instance_settings())  # python_logs as shipped
        self.instance.add_dynamic_partitions("catalog_shard", ["apparel", "accessories", "footwear"])
        for shard in ("apparel", "accessories", "footwear"):
            self.run("shard_ingest", shard)
        self.train_result = self.run("train_model", run_config={"ops": {"clip_model": {"config": FAST_MODEL_CONFIG}}})

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.home / "warehouse.duckdb")

    def run(self, job: str, partition_key: str | None = None, run_config: dict | None = None):
        result = self.defs.resolve_job_def(job).execute_in_process(instance=self.instance, partition_key=partition_key, run_config=run_config)
        assert result.success
        return result


_TRAINED: list[TrainedHome] = []


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory) -> TrainedHome:
    # test_scoring_assets imports this fixture; the cache makes both modules share one
    # training run instead of each paying for its own.
    if not _TRAINED:
        _TRAINED.append(TrainedHome(tmp_path_factory.mktemp("model_assets")))
    return _TRAINED[0]


def _materialization(result, asset: str):
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    assert len(events) == 1
    return events[0].materialization


def test_clip_model_metadata_reports_heldout_evaluation_and_baselines(trained_home: TrainedHome) -> None:
    meta = _materialization(trained_home.train_result, "clip_model").metadata
    for name in ("heldout_recall@1", "heldout_recall@10", "heldout_map"):
        assert 0.0 <= meta[name].value <= 1.0
    # The sample catalog has labels: the model is judged on them (the teacher never read them).
    assert meta["evaluated_against"].value == "catalog labels (lenient)"
    assert meta["teacher_reads"].value == "title, description, image, category"
    comparison = meta["comparison"].data
    assert set(comparison) == {"catalog labels (lenient)", "catalog labels (mapped)", "catalog labels (strict)"}
    methods = comparison["catalog labels (lenient)"]
    assert set(methods) == {"trained", "trained_without_evidence", "trained_uncalibrated", "untrained", "frequency_prior"}
    assert {"top1/product_type", "top1/color", "recall@10", "map"} <= set(methods["trained"])
    ablation = meta["calibration_ablation"].data
    assert {f"prior_weight={w}" for w in (0.0, 0.25, 0.5, 0.75, 1.0)} <= set(ablation)
    assert {"evidence_weight[color]=0.0", "evidence_weight[color]=4.0", "fitted"} <= set(ablation)
    assert set(meta["calibration_evidence_weight"].data) <= set(meta["thresholds"].data)
    assert set(meta["thresholds"].data) >= {"product_type", "color", "gender"}
    assert meta["heldout_products"].value > 50  # products outside the labeled sample


def test_clip_model_plots_show_in_metadata_and_on_disk(trained_home: TrainedHome) -> None:
    meta = _materialization(trained_home.train_result, "clip_model").metadata
    for name in ("precision_recall", "confusion_summary"):
        assert meta[f"plot/{name}"].value.startswith(f"![{name}](data:image/png;base64,")
        path = Path(meta[f"plot/{name}_file"].value)
        assert path.is_file() and path.read_bytes().startswith(b"\x89PNG")


def test_checkpoint_registered_with_version_in_local_dir_layout(trained_home: TrainedHome) -> None:
    registry = trained_home.warehouse.read_table("clip_model")
    assert registry.height == 1
    row = registry.row(0, named=True)
    directory = Path(row["path"])
    assert directory.name == row["version"]
    assert (directory / "open_clip_config.json").is_file() and (directory / "open_clip_model.safetensors").is_file()
    open_clip.create_model(f"local-dir:{directory}")


def test_checks_evaluate_and_gate(trained_home: TrainedHome) -> None:
    checks = {e.check_name: e for e in trained_home.train_result.get_asset_check_evaluations() if e.asset_key.to_user_string() == "clip_model"}
    assert set(checks) == {"model_beats_prior", "heldout_key_accuracy", "heldout_key_precision"}
    assert all(e.passed for e in checks.values())  # thresholds set to 0 for the short run
    assert checks["model_beats_prior"].metadata["threshold"].value == 0.0
    assert "prior" in checks["model_beats_prior"].description


def test_training_progress_is_in_the_run_log(trained_home: TrainedHome) -> None:
    messages = [entry.user_message for entry in trained_home.instance.all_logs(trained_home.train_result.run_id)]
    assert any(message.startswith("epoch 1/") and "validation top-1" in message for message in messages)
    assert any(message.startswith("evaluated ") for message in messages)
