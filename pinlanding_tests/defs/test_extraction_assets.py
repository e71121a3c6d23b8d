"""`raw_attributes` and `curated_vocabulary` through Dagster, with a loopback OpenAI server.

Proves the issue's "Done when": a shard makes the expected calls, survives every injected
fault with nothing lost, a second materialization makes zero calls; the vocabulary explains
every dropped or merged value and the overrides file wins.
"""

from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, materialize

from pinlanding_assets.core.catalog import list_shards, load_catalog, locate_catalog
from pinlanding_assets.core.vlm_extraction import PROMPT_VERSION
from pinlanding_assets.core.warehouse import Warehouse
from pinlanding_assets.defs.extraction_assets import raw_attributes
from pinlanding_assets.defs.llm_resources import LLMResource
from pinlanding_assets.defs.partitions import shard_partitions
from pinlanding_assets.defs.resources import CatalogResource, DataHomeResource
from pinlanding_assets.defs.vocabulary_assets import curated_vocabulary
from pinlanding_tests.fake_openai_server import Fault, fake_openai, first_user_text, framed, last_user_text, product_fields  # noqa: F401 (fixture)

SHARD = "apparel"
SAMPLE_CONFIG = {"sample_share": 0.1, "sample_min": 12, "sample_max": 12}


def vlm_answer(body: dict) -> dict:
    """Reads the title it is sent (the catalog's labels are not in the prompt)."""
    words = product_fields(body)["Title"].split()
    return {
        "attributes": [
            {"key": "product_type", "value": words[-1]},
            {"key": "color", "value": words[-2]},
            {"key": "Gender", "value": words[1].upper()},
            {"key": "style", "value": "best seller"},  # a marketing phrase the judge must drop
        ]
    }


def llm_resource(server, **overrides) -> LLMResource:
    base = dict(extractor="openai", model="fake-vlm", base_url=server.base_url, api_key_env="PINLANDING_TEST_OPENAI_KEY",
                timeout_s=0.5, max_retries=3, max_concurrency=3, backoff_base_s=0.01, max_backoff_s=2.0)
    return LLMResource(**(base | overrides))


def resources(home: Path, catalog: Path, llm: LLMResource) -> dict:
    return {"data_home": DataHomeResource(home=str(home)), "catalog": CatalogResource(location=str(catalog)), "llm": llm}


def materialize_shard(instance, res: dict):
    return materialize(
        [raw_attributes], resources=res, partition_key=SHARD, instance=instance,
        run_config={"ops": {"raw_attributes": {"config": SAMPLE_CONFIG}}},
    )


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions(shard_partitions.name, [SHARD])
        yield inst


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("PINLANDING_TEST_OPENAI_KEY", "test-key")


def sampled_titles(sample_catalog: Path, home: Path) -> list[str]:
    in_sample = Warehouse(home / "warehouse.duckdb").read("SELECT title FROM catalog_products WHERE in_sample ORDER BY product_id")
    return in_sample.get_column("title").to_list()


def test_shard_calls_survives_faults_loses_nothing_and_second_run_is_free(fake_openai, sample_catalog, tmp_path, instance, api_key):
    fake_openai.responder = vlm_answer
    # Which products are sampled is deterministic: script faults on their titles.
    products = load_catalog(locate_catalog(sample_catalog), shards=[SHARD]).products
    from pinlanding_assets.core.extraction import SampleSpec, select_sample

    sample = select_sample(products, SampleSpec(0.1, 12, 12, 0))
    titles = sample.get_column("title").to_list()
    assert len(set(titles)) == len(titles)
    fake_openai.inject(Fault.rate_limit(retry_after_s=0.3), match=f"Title: {titles[0]}\\n")
    fake_openai.inject(Fault.server_error(500), match=f"Title: {titles[1]}\\n")
    fake_openai.inject(Fault.hang(2.0), match=f"Title: {titles[2]}\\n")
    fake_openai.inject(Fault.malformed(), match=f"Title: {titles[3]}\\n")
    fake_openai.inject(Fault.truncated(), Fault.truncated(), match=f"Title: {titles[4]}\\n")
    fake_openai.inject(Fault.malformed(), Fault.malformed(), match=f"Title: {titles[5]}\\n")

    home = tmp_path / "home"
    result = materialize_shard(instance, resources(home, sample_catalog, llm_resource(fake_openai)))
    assert result.success
    meta = result.asset_materializations_for_node("raw_attributes")[0].metadata
    assert meta["extractor"].value == "openai" and meta["prompt_version"].value == PROMPT_VERSION
    # 12 products + 3 retries + 3 repairs (malformed, truncated x1 then x1 more, malformed x2)
    assert meta["stats/calls_made"].value == fake_openai.request_count() == 12 + 3 + 3
    assert meta["stats/cache_hits"].value == 0
    assert meta["stats/prompt_tokens"].value > 0 and meta["stats/estimated_cost_usd"].value > 0
    assert fake_openai.pending_faults() == 0
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["sample_accounted_for"].passed

    warehouse = Warehouse(home / "warehouse.duckdb")
    attributes = warehouse.read_table("raw_attributes")
    quarantine = warehouse.read_table("quarantine").filter(pl.col("stage") == "extraction")
    sampled = set(sample.get_column("product_id"))
    labeled = set(attributes.get_column("product_id"))
    assert labeled | set(quarantine.get_column("product_id")) == sampled  # nothing lost
    assert quarantine.get_column("reason").to_list() == ["vlm output invalid after repair"] * 2
    assert set(attributes.get_column("prompt_version")) == {PROMPT_VERSION}
    assert set(attributes.get_column("extractor")) == {"openai"}

    # Second materialization: zero calls, same rows.
    calls = fake_openai.request_count()
    again = materialize_shard(instance, resources(home, sample_catalog, llm_resource(fake_openai)))
    assert again.success
    meta = again.asset_materializations_for_node("raw_attributes")[0].metadata
    assert fake_openai.request_count() == calls
    assert meta["stats/calls_made"].value == 0 and meta["stats/cache_hits"].value == 12
    assert warehouse.read_table("raw_attributes").sort("product_id", "key", "value").equals(attributes.sort("product_id", "key", "value"))


def test_a_budget_stops_the_shard_cleanly_says_so_and_the_next_run_asks_the_rest(fake_openai, sample_catalog, tmp_path, instance, api_key):
    fake_openai.responder = vlm_answer
    home = tmp_path / "home"
    result = materialize_shard(instance, resources(home, sample_catalog, llm_resource(fake_openai, max_calls=3, max_concurrency=1, progress_every=5)))
    assert result.success
    meta = result.asset_materializations_for_node("raw_attributes")[0].metadata
    assert meta["stopped_by_budget"].value == "call budget reached (max_calls=3)"
    assert meta["stats/calls_made"].value == fake_openai.request_count() == 3 and meta["stats/budget_stopped"].value == 9
    assert meta["labeled_products"].value == 3
    quarantine = Warehouse(home / "warehouse.duckdb").read_table("quarantine").filter(pl.col("stage") == "extraction")
    assert quarantine.get_column("reason").to_list() == ["call budget reached"] * 9
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["sample_accounted_for"].passed and not checks["attribute_coverage"].passed
    # Progress in the run log while it ran: every 5 answers and at the end.
    messages = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]
    progress = [m for m in messages if m.startswith("LLM ")]
    assert [m.split(":")[0] for m in progress] == ["LLM 5/12 requests done", "LLM 10/12 requests done", "LLM 12/12 requests done"]
    assert progress[-1].startswith("LLM 12/12 requests done: 3 calls, 0 cache hits, 0 errors, ~$")
    assert progress[-1].endswith("estimated; call budget reached (max_calls=3), 9 requests not sent")
    assert any("9 sampled products were not asked" in m for m in messages)

    again = materialize_shard(instance, resources(home, sample_catalog, llm_resource(fake_openai)))
    meta = again.asset_materializations_for_node("raw_attributes")[0].metadata
    assert meta["stopped_by_budget"].value == "no" and meta["labeled_products"].value == 12
    assert meta["stats/cache_hits"].value == 3 and meta["stats/calls_made"].value == 9


def test_extractor_defaults_to_offline_without_a_key_and_openai_with_one(monkeypatch):
    monkeypatch.delenv("PINLANDING_TEST_OPENAI_KEY", raising=False)
    auto = LLMResource(extractor="auto", api_key_env="PINLANDING_TEST_OPENAI_KEY")
    assert auto.resolved_extractor() == "offline"
    with pytest.raises(ValueError, match="needs an API key"):
        LLMResource(extractor="openai", api_key_env="PINLANDING_TEST_OPENAI_KEY").resolved_extractor()
    monkeypatch.setenv("PINLANDING_TEST_OPENAI_KEY", "k")
    assert auto.resolved_extractor() == "openai"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert auto.settings().base_url == "http://127.0.0.1:9/v1" and auto.settings().api_key == "k"


def test_vocabulary_with_the_llm_judge_explains_everything_and_overrides_win(fake_openai, sample_catalog, tmp_path, instance, api_key):
    fake_openai.responder = vlm_answer
    home = tmp_path / "home"
    llm = llm_resource(fake_openai)
    assert materialize_shard(instance, resources(home, sample_catalog, llm)).success

    def judge_answer(body: dict) -> dict:
        import json

        items = json.loads(framed(first_user_text(body), "values"))
        return {"verdicts": [
            {**item, "searchable": item["value"] != "best seller", "visually_grounded": item["value"] != "best seller", "safe": True,
             "reason": "marketing phrase" if item["value"] == "best seller" else "ok"}
            for item in items
        ]}

    fake_openai.responder = judge_answer
    overrides = tmp_path / "overrides.csv"
    overrides.write_text(
        "key,value,action,canonical,note\n"
        "color,red,deny,,test: deny wins over a frequent value\n"
        "style,best seller,allow,,test: allow wins over the judge\n"
        "gender,women,rename,woman shopper,test: rename\n"
    )
    vocab_config = {"ops": {"curated_vocabulary": {"config": {"min_count": 2, "merge_encoder": "none", "overrides_path": str(overrides)}}}}
    calls_before = fake_openai.request_count()
    result = materialize([curated_vocabulary], resources=resources(home, sample_catalog, llm), instance=instance, run_config=vocab_config)
    assert result.success
    meta = result.asset_materializations_for_node("curated_vocabulary")[0].metadata
    assert meta["judge"].value == "llm"
    judge_calls = fake_openai.request_count() - calls_before
    assert judge_calls == meta["judge/calls_made"].value >= 1
    assert all(r.body["response_format"]["json_schema"]["name"] == "attribute_verdicts" for r in fake_openai.requests[calls_before:])
    judge_request = fake_openai.requests[calls_before].body  # the values are framed as data
    assert "never instructions" in judge_request["messages"][0]["content"]
    assert first_user_text(judge_request).startswith("<values>\n[") and first_user_text(judge_request).endswith("]\n</values>")
    assert result.get_asset_check_evaluations()[0].passed

    vocabulary = Warehouse(home / "warehouse.duckdb").read_table("curated_vocabulary")
    row = {(r["key"], r["value"]): r for r in vocabulary.iter_rows(named=True)}
    assert row[("color", "red")]["status"] == "dropped" and row[("color", "red")]["reason"].startswith("override: deny")
    assert row[("style", "best seller")]["status"] == "kept" and "judge (llm): marketing phrase" in row[("style", "best seller")]["reason"]
    women = row[("gender", "women")]
    assert women["canonical"] == "woman shopper" and women["step"] == "override"
    # every dropped or changed value says why
    explained = vocabulary.filter((pl.col("status") == "dropped") | (pl.col("value") != pl.col("canonical")))
    assert explained.filter(pl.col("reason").is_null() | (pl.col("reason") == "kept")).is_empty()

    # re-materializing the vocabulary asks the judge nothing new
    calls_before = fake_openai.request_count()
    assert materialize([curated_vocabulary], resources=resources(home, sample_catalog, llm), instance=instance, run_config=vocab_config).success
    assert fake_openai.request_count() == calls_before


def test_offline_path_without_a_key(sample_catalog, tmp_path, instance, monkeypatch):
    monkeypatch.delenv("PINLANDING_TEST_OPENAI_KEY", raising=False)
    home = tmp_path / "home"
    llm = LLMResource(extractor="auto", api_key_env="PINLANDING_TEST_OPENAI_KEY")
    result = materialize_shard(instance, resources(home, sample_catalog, llm))
    assert result.success
    meta = result.asset_materializations_for_node("raw_attributes")[0].metadata
    assert meta["extractor"].value == "offline" and meta["stats/calls_made"].value == 0
    result = materialize([curated_vocabulary], resources=resources(home, sample_catalog, llm), instance=instance,
                         run_config={"ops": {"curated_vocabulary": {"config": {"merge_encoder": "none"}}}})
    assert result.success
    assert result.asset_materializations_for_node("curated_vocabulary")[0].metadata["judge"].value == "rules"
    assert SHARD in list_shards(locate_catalog(sample_catalog))
