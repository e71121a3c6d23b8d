"""`curated_vocabulary`: the attribute set every later stage uses (reads `raw_attributes`)."""


import time

import polars as pl
from dagster import AssetCheckSpec, AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset

from ..core.checks import VocabularyCheckConfig, kept_values_per_key, vocabulary_checks
from ..core.compute import ComputeSettings, resolve_compute
from ..core.settings import VOCABULARY_OVERRIDES
from ..core.vocabulary import (
    VOCABULARY_SCHEMA,
    CurationConfig,
    LLMJudge,
    RuleJudge,
    curation_funnel,
    kept_attributes,
    load_overrides,
    minilm_encoder,
)
from ..core.vocabulary import curate_vocabulary as curate
from .checks import check_results
from .config_from_core import CoreSettings, with_core_settings
from .llm_resources import LLMResource
from .resources import DataHomeResource
from .tables import table_spec, written_table_metadata

CODE_VERSION = "1"  # bump when this step's logic (here or in core/vocabulary/) changes the table


class VocabularyConfig(with_core_settings(Config, CoreSettings(CurationConfig), CoreSettings(VocabularyCheckConfig), CoreSettings(ComputeSettings))):
    merge_encoder: str = "minilm"  # minilm | none (spelling alone)
    judge: str = "auto"  # auto (llm when the llm resource resolves to openai) | llm | rules
    overrides_path: str = str(VOCABULARY_OVERRIDES)


@multi_asset(
    name="curated_vocabulary",
    specs=[
        table_spec(
            "curated_vocabulary", group="curation", code_version=CODE_VERSION, kinds={"openai"}, schema=VOCABULARY_SCHEMA, deps=["raw_attributes"],
            description=(
                "One row per raw attribute value of all shards: normalized and canonical form, frequency, merged-from, "
                "kept or dropped, the deciding step and why (the judge may be the LLM)."
            ),
        )
    ],
    check_specs=[
        AssetCheckSpec("every_decision_explained", asset="curated_vocabulary", blocking=True, description="Every dropped or merged value has a reason; every kept value a canonical form."),
        AssetCheckSpec("values_per_key_within_bounds", asset="curated_vocabulary", description="Every key keeps between min_values_per_key and max_values_per_key values."),
    ],
)
def curated_vocabulary(context: AssetExecutionContext, config: VocabularyConfig, data_home: DataHomeResource, llm: LLMResource) -> MaterializeResult:
    """Normalize, merge, filter and judge the raw values of all shards."""
    warehouse = data_home.warehouse
    raw = warehouse.read_table("raw_attributes")
    if raw.is_empty():
        raise ValueError("raw_attributes is empty: materialize raw_attributes for at least one shard first")
    started = time.perf_counter()
    encoder = minilm_encoder(resolve_compute(config.to_core(ComputeSettings)).device) if config.merge and config.merge_encoder == "minilm" else None
    curation = config.to_core(CurationConfig)
    judge_choice = config.judge if config.judge != "auto" else ("llm" if llm.resolved_extractor() == "openai" else "rules")
    client = llm.client(warehouse, on_progress=lambda p: context.log.info(p.describe())) if judge_choice == "llm" else None
    judge = LLMJudge(client) if client is not None else RuleJudge(curation.max_value_words, curation.max_value_chars)
    overrides = load_overrides(config.overrides_path)
    vocabulary = curate(raw, curation, encoder=encoder, judge=judge, overrides=overrides)
    warehouse.replace_table("curated_vocabulary", vocabulary)
    kept = kept_attributes(vocabulary)
    funnel = curation_funnel(vocabulary)
    per_key = kept_values_per_key(vocabulary)
    used = vocabulary.filter(pl.col("step") == "override").height
    context.log.info("vocabulary: %d kept attributes from %d raw values (judge: %s)", kept.height, vocabulary.height, judge_choice)
    metadata = {
        **written_table_metadata(warehouse, ["curated_vocabulary"])["curated_vocabulary"],
        "raw_values": vocabulary.height,
        "kept_attributes": kept.height,
        "dropped_values": vocabulary.filter(pl.col("status") == "dropped").height,
        "merged_values": vocabulary.filter(pl.col("step") == "merge").height,
        "dropped_by_step": MetadataValue.json(dict(vocabulary.filter(pl.col("status") == "dropped").group_by("step").len().sort("step").iter_rows())),
        "kept_per_key": MetadataValue.json(per_key),
        "funnel": MetadataValue.md(funnel.to_pandas().to_markdown(index=False)),
        "judge": judge_choice,
        "merge_encoder": config.merge_encoder if config.merge else "off",
        "overrides_file": config.overrides_path,
        "overrides_rows": overrides.height,
        "values_decided_by_overrides": used,
        "seconds": round(time.perf_counter() - started, 2),
        "preview": MetadataValue.md(kept.head(30).to_pandas().to_markdown(index=False) if kept.height else "(empty)"),
    }
    if client is not None:
        metadata |= client.stats.as_metadata("judge/")
    return MaterializeResult(
        asset_key="curated_vocabulary",
        metadata=metadata,
        check_results=check_results(vocabulary_checks(vocabulary, config.to_core(VocabularyCheckConfig))),
    )
