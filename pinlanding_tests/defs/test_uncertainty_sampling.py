"""Uncertainty-driven teacher sampling through the graph (issue 16): each pass of the graph
is one round, on ~320 real products in three shards, with the VLM path (the loopback
server as the VLM) so that every teacher call is counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance

from pinlanding_assets.cli import run_graph
from pinlanding_assets.core.active_sampling import SamplingConfig, choose_next, pool_scores_from_table, random_order, shard_shares
from pinlanding_assets.core.model_registry import ModelRegistry
from pinlanding_assets.core.retraining import trained_sample
from pinlanding_assets.core.shard_ingest import catalog_rows_per_shard, scoring_space
from pinlanding_assets.core.catalog import locate_catalog
from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_assets.definitions import build_definitions
from pinlanding_assets.defs.llm_resources import LLMResource
from pinlanding_assets.defs.resources import CatalogResource, DataHomeResource, spark_resource
from pinlanding_tests.fake_openai_server import FakeOpenAIServer, PlausibleModel

SAMPLING = {"active_sampling": "uncertainty", "active_seed_size": 60, "active_budget": 150, "active_rounds": 1}  # 60 -> 150 calls over all shards
RUN_CONFIG = {
    "shard_ingest": {"ops": {"raw_attributes": {"config": SAMPLING}}},
    # A short-trained model: this test is about the rounds' wiring, not model quality.
    "train_model": {"ops": {"clip_model": {"config": {"epochs": 1, "min_steps": 10, "batch_size": 64, "eval_max_products": 60, "baseline_max_products": 20,
                                                      "min_recall_at_1": 0.0, "min_lift_over_prior": -1.0, "min_key_top1": 0.0, "min_key_precision": 0.0}}}},
    "shard_scoring": {"ops": {"product_attribute_scores": {"config": {"min_assignment_precision": 0.0}}}},
}
CONFIG = SamplingConfig(sampling="uncertainty", seed_size=60, budget=150, rounds=1)


def vlm_requests(server: FakeOpenAIServer) -> int:
    return sum(r.body["response_format"]["json_schema"]["name"] == "product_attributes" for r in server.requests)


def samples(warehouse: Warehouse) -> dict[str, set[str]]:
    frame = warehouse.read("SELECT shard, product_id FROM catalog_products WHERE in_sample")
    return {shard: set(group.get_column("product_id")) for (shard,), group in frame.group_by("shard")}


def latest_sampling_metadata(instance: DagsterInstance) -> dict[str, dict]:
    """shard -> the `sampling/*` metadata of its latest raw_attributes materialization."""
    out: dict[str, dict] = {}
    for run in reversed(instance.get_runs()):  # oldest first: a later one wins
        for event in instance.all_logs(run.run_id):
            data = event.dagster_event
            if data and data.event_type_value == "ASSET_MATERIALIZATION" and data.asset_key.to_user_string() == "raw_attributes":
                materialization = data.event_specific_data.materialization
                out[materialization.partition] = {k: v.value for k, v in materialization.metadata.items() if k.startswith("sampling/")}
    return out


@pytest.fixture(scope="module")
def rounds(real_slice: Path, tmp_path_factory):
    """Three passes of ingest -> train -> score (no publishing): the seed round, one round of
    picks, and a pass with the budget spent."""
    home = tmp_path_factory.mktemp("home")
    server = FakeOpenAIServer(responder=PlausibleModel()).start()  # no faults: one request per product asked
    llm = LLMResource(extractor="openai", model="fake-vlm", base_url=server.base_url, api_key_env="PINLANDING_TEST_OPENAI_KEY", max_concurrency=3)
    defs = build_definitions({"data_home": DataHomeResource(home=str(home)), "catalog": CatalogResource(location=str(real_slice)), "spark": spark_resource(home=str(home)), "llm": llm})
    warehouse = Warehouse(home / "warehouse.duckdb")
    passes = []
    mp = pytest.MonkeyPatch()
    mp.setenv("PINLANDING_TEST_OPENAI_KEY", "test-key")
    try:
        with DagsterInstance.ephemeral() as instance:
            for _ in range(3):
                stages = run_graph(defs, instance, run_config=RUN_CONFIG, publish=False)
                passes.append({
                    "stages": {s.label: s.outcome for s in stages},
                    "samples": samples(warehouse),
                    "requests": vlm_requests(server),
                    "scores": warehouse.read("SELECT product_id, key, value, probability, encoder_probability, model_version, shard FROM product_attribute_scores"),
                    "metadata": latest_sampling_metadata(instance),
                })
            yield passes, warehouse, home, catalog_rows_per_shard(locate_catalog(real_slice))
    finally:
        server.stop()
        mp.undo()


def test_the_seed_round_is_a_random_sample_split_over_shards(rounds):
    passes, _, _, rows = rounds
    seed = passes[0]
    shares = shard_shares(CONFIG.seed_size, rows)  # apparel 140, accessories 90, footwear 90 rows
    assert {s: len(ids) for s, ids in seed["samples"].items()} == shares and sum(shares.values()) <= CONFIG.seed_size
    for shard, ids in seed["samples"].items():
        shard_ids = seed["scores"].filter(pl.col("shard") == shard).get_column("product_id").unique().to_list()
        assert ids == set(random_order(shard_ids, CONFIG.seed)[: shares[shard]])
    assert seed["requests"] == sum(shares.values())  # one VLM call per product of the seed
    assert all(m["sampling/method"] == "uncertainty" and m["sampling/round"] == 0 and m["sampling/status"] == "seed sample" for m in seed["metadata"].values())


def test_the_next_round_adds_the_products_the_first_model_was_least_sure_of(rounds):
    passes, warehouse, _, rows = rounds
    seed, second = passes[0], passes[1]
    assert second["stages"]["shard_ingest[apparel]"] == "ran" and second["stages"]["train_model"] == "ran"
    budget = shard_shares(CONFIG.budget, rows)
    picks_u, left_u = [], []
    for shard, before in seed["samples"].items():
        after = second["samples"][shard]
        assert before < after and len(after) == budget[shard]  # the seed kept, then the picks
        picked = after - before
        # The picks are what choose_next makes of the scores the first model stored, its
        # uncertainty averaged over the keys that model learned (as the metadata says).
        stored = seed["scores"].filter(pl.col("shard") == shard)
        space = scoring_space(warehouse, stored.get_column("model_version").unique().to_list())
        pool = pool_scores_from_table(stored, CONFIG, space)
        assert picked == set(choose_next(pool, before, len(picked), CONFIG))
        assert pool.keys and set(pool.keys) <= set(stored.get_column("key"))
        assert second["metadata"][shard]["sampling/uncertainty_keys"] == ", ".join(pool.keys)
        of = dict(zip(pool.product_ids, pool.uncertainty))
        picks_u += [of[p] for p in picked]
        left_u += [u for p, u in of.items() if p not in after]
        meta = second["metadata"][shard]
        assert (meta["sampling/round"], meta["sampling/status"], meta["sampling/picks_this_round"]) == (1, "uncertainty picks", len(picked))
        assert meta["sampling/picks_mean_uncertainty"] > meta["sampling/unlabeled_mean_uncertainty"]
    assert np.mean(picks_u) > np.mean(left_u) + 0.05, (np.mean(picks_u), np.mean(left_u))


def test_each_round_retrains_and_no_product_is_asked_twice(rounds):
    passes, warehouse, home, _ = rounds
    seed, second, _ = passes
    versions = [set(p["scores"].get_column("model_version")) for p in passes]
    assert len(versions[0]) == len(versions[1]) == 1 and versions[0] != versions[1]  # the shards were scored by a retrained model
    registry = ModelRegistry(warehouse, home / "models")
    promoted = registry.history().filter(pl.col("status") == "promoted")
    assert promoted.height == 2
    trained = set(trained_sample(registry.current().path).get_column("product_id"))
    assert set(warehouse.read("SELECT DISTINCT product_id FROM raw_attributes").get_column("product_id")) <= trained  # trained on round 1's labels
    # Cached answers are not sent again: each product was asked once, in its round.
    total = sum(len(ids) for ids in second["samples"].values())
    assert second["requests"] == total and total <= CONFIG.budget
    assert second["requests"] - seed["requests"] == sum(len(second["samples"][s] - seed["samples"][s]) for s in seed["samples"])
    assert warehouse.read("SELECT count(DISTINCT extractor) FROM raw_attributes WHERE extractor = 'openai'").item() == 1


def test_with_the_budget_spent_a_pass_changes_nothing_and_calls_nothing(rounds):
    passes, _, _, _ = rounds
    second, third = passes[1], passes[2]
    assert third["samples"] == second["samples"] and third["requests"] == second["requests"]
    assert third["stages"]["train_model"] == "skipped"  # the same answers: no retraining
    assert all(m["sampling/status"] == "budget spent" and m["sampling/picks_this_round"] == 0 for m in third["metadata"].values())
