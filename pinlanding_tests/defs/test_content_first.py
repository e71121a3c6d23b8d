"""Content first: catalogs with no labels become landing pages, offline and through the VLM
path, and their gates judge on silver labels (held-out teacher answers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance

from pinlanding_assets.core.settings import REPO_ROOT
from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_assets.definitions import build_definitions
from pinlanding_assets.defs.llm_resources import LLMResource
from pinlanding_assets.defs.resources import CatalogResource, DataHomeResource, spark_resource
from pinlanding_assets.cli import run_graph
from pinlanding_tests.fake_openai_server import FakeOpenAIServer, PlausibleModel

# A small catalog: half of it labeled by the (free) offline teacher, short training. The
# gates keep their default thresholds: this is what a merchant's first run looks like.
LABEL_FREE_CONFIG = {
    "shard_ingest": {"ops": {"raw_attributes": {"config": {"sample_share": 0.5}}}},
    "train_model": {"ops": {"clip_model": {"config": {"epochs": 6, "min_steps": 120, "eval_max_products": 200, "baseline_max_products": 100}}}},
}


def run_label_free(catalog: Path, home: Path, llm: LLMResource, run_config: dict = LABEL_FREE_CONFIG):
    defs = build_definitions(
        {
            "data_home": DataHomeResource(home=str(home)),
            "catalog": CatalogResource(location=str(catalog)),
            "spark": spark_resource(home=str(home)),
            "llm": llm,
        }
    )
    with DagsterInstance.ephemeral() as instance:
        stages = run_graph(defs, instance, run_config=run_config)
        checks = {}
        for run in reversed(instance.get_runs()):  # oldest first: a later evaluation wins
            for event in instance.all_logs(run.run_id):
                if event.dagster_event and event.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION":
                    evaluation = event.dagster_event.event_specific_data
                    checks[(evaluation.asset_key.to_user_string(), evaluation.check_name)] = evaluation
    return stages, checks, Warehouse(home / "warehouse.duckdb")


def assert_pages_from_content(warehouse: Warehouse, checks: dict) -> None:
    assert not warehouse.read_table("catalog_products").columns.__contains__("label_product_type")
    pages = warehouse.read_table("landing_pages")
    assert pages.get_column("slug").n_unique() >= 3
    # Product types came from the titles (no label column, no hand list of nouns).
    types = warehouse.read("SELECT DISTINCT value FROM raw_attributes WHERE key = 'product_type'").get_column("value").to_list()
    assert len({"tshirt", "bag", "backpack", "deo", "watch", "handbag", "jacket"} & set(types)) >= 3 and len(types) >= 8, types
    # The model was judged on silver labels, and every check says what it measured.
    beats = checks[("clip_model", "model_beats_prior")]
    assert beats.passed and beats.metadata["truth"].value == "teacher labels (silver)"
    for (asset, name), evaluation in checks.items():
        value = evaluation.metadata.get("value")
        assert value is None or value.value is None or value.value == value.value, (asset, name)  # no NaN
        if not evaluation.passed:
            assert evaluation.severity.value == "WARN" and evaluation.description, (asset, name)
    page_check = checks[("landing_pages", "page_precision_at_10")]
    assert page_check.passed and "not measured" in page_check.description


@pytest.mark.parametrize("with_text", [False, True], ids=["id-title-image", "with-category-description"])
def test_label_free_catalog_makes_pages(with_text: bool, label_free_slice: Path, label_free_text_slice: Path, tmp_path: Path) -> None:
    catalog = label_free_text_slice if with_text else label_free_slice
    stages, checks, warehouse = run_label_free(catalog, tmp_path / "home", LLMResource(extractor="offline"))
    assert [s.label for s in stages] == ["shard_ingest[all]", "train_model", "shard_scoring[all]", "publish_pages"]
    assert_pages_from_content(warehouse, checks)
    sources = set(warehouse.read("SELECT DISTINCT source FROM raw_attributes").get_column("source"))
    assert ("category" in sources or "description" in sources) == with_text


def test_label_free_catalog_through_the_vlm_path(label_free_slice: Path, tmp_path: Path) -> None:
    """`make run` on a label-free catalog with an OpenAI-compatible endpoint (the loopback fake
    answering like a plausible, imperfect VLM, with 429/500/bad-JSON faults mixed in): exits
    0 with pages; run again with every step forced, it makes no new call."""
    model = PlausibleModel()
    home = tmp_path / "home"
    config = tmp_path / "run.json"
    config.write_text(json.dumps(LABEL_FREE_CONFIG))
    with FakeOpenAIServer(responder=model, fault_policy=model.faults) as server:
        env = os.environ | {
            "PINLANDING_CATALOG": str(label_free_slice),
            "PINLANDING_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": server.base_url,
            "PINLANDING_EXTRACTOR": "openai",
        }
        command = [sys.executable, "-m", "pinlanding_assets.cli", "--config", str(config)]
        first = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert "landing pages" in first.stdout
        calls = server.request_count()
        kinds = {r.body["response_format"]["json_schema"]["name"] for r in server.requests}
        # Extraction, the vocabulary judge, the title writer and the style concepts (issue 16: with
        # an endpoint, concepts are proposed and decomposed by the LLM).
        assert kinds == {"product_attributes", "attribute_verdicts", "collection_validation", "collection_title", "collection_title_score", "concept_proposals", "concept_decomposition"}
        assert any(r.fault for r in server.requests)  # faults were injected and survived

        again = subprocess.run([*command, "--force"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert server.request_count() == calls  # every answer came from the cache

    warehouse = Warehouse(home / "warehouse.duckdb")
    assert warehouse.read("SELECT count(DISTINCT slug) FROM landing_pages").item() >= 3
    # The VLM never saw a label, and named the product types itself.
    assert not any("Catalog" in json.dumps(r.body) for r in server.requests if r.body["response_format"]["json_schema"]["name"] == "product_attributes")
    assert warehouse.read("SELECT count(*) FROM raw_attributes WHERE key = 'product_type' AND extractor = 'openai'").item() > 50
    judged = warehouse.read("SELECT judged_by, status FROM curated_vocabulary WHERE value = 'best seller'")
    assert judged.rows() and set(judged.get_column("status")) == {"dropped"}
