"""`raw_attributes`: validate one catalog shard and label its sample with the teacher.

One step, four tables of the shard (a `@multi_asset`, see `defs/tables.py` for why):
`raw_attributes`, `catalog_products`, `quarantine` and `shard_ingests`; later steps depend
on the table they read.
"""


from collections.abc import Callable

import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset

from ..core.catalog import QUARANTINE_SCHEMA
from ..core.checks import IngestCheckConfig
from ..core.evaluation import teacher_agreement
from ..core.active_sampling import SamplingConfig
from ..core.extraction import RAW_ATTRIBUTE_TABLE_SCHEMA, STORED_PRODUCT_SCHEMA, AttributeExtractor, OfflineExtractor, SampleSpec
from ..core.ingest_state import INGESTS_SCHEMA, INGESTS_TABLE
from ..core.llm_client import LLMProgress
from ..core.model_inputs import ModelInputs, ModelInputSettings
from ..core.shard_ingest import ChooseTeacher, IngestSettings, ShardIngest, ingest_shard
from ..core.type_discovery import DiscoveryConfig
from ..core.vlm_extraction import VLMExtractionConfig, VLMExtractor, describe_domain
from ..core.warehouse import Warehouse
from .checks import check_results
from .config_from_core import CoreSettings, with_core_settings
from .llm_resources import LLMResource
from .partitions import shard_check, shard_partitions
from .resources import CatalogResource, DataHomeResource
from .tables import table_spec, written_table_metadata

CODE_VERSION = "2"  # bump when this step's logic (here or in core/shard_ingest.py, catalog.py, extraction.py, vlm_extraction.py) changes its tables
GROUP = "extraction"
TABLES = ("raw_attributes", "catalog_products", "quarantine", INGESTS_TABLE)  # the asset first: its materialization comes first

RAW_ATTRIBUTES_SPECS = [
    table_spec(
        "raw_attributes", group=GROUP, code_version=CODE_VERSION, kinds={"openai"}, schema=RAW_ATTRIBUTE_TABLE_SCHEMA,
        description=(
            "Key-value attributes of a sample of the shard's products, from the teacher: the VLM (`openai`, "
            "cached per product, image and prompt version) or its offline stand-in, which reads the products' "
            "content (types discovered from the shard's titles). Neither reads the catalog's labels unless the "
            "catalog resource's `teacher_columns` name them. With `active_sampling: uncertainty` each materialization "
            "is one round: the previous sample plus the products the last model is least sure of, read as state from "
            "the stored `product_attribute_scores` (a loop the asset graph cannot declare: it would be a cycle)."
        ),
    ),
    table_spec(
        "catalog_products", group=GROUP, code_version=CODE_VERSION, schema=STORED_PRODUCT_SCHEMA,
        description=(
            "The shard's validated catalog rows (text cut to the ingest limits), with the teacher's pixel colour, "
            "whether the product was in the labeled sample, and the catalog's `label_<key>` columns where it has "
            "labels (ground truth for evaluation only)."
        ),
    ),
    table_spec(
        "quarantine", group=GROUP, code_version=CODE_VERSION, schema=QUARANTINE_SCHEMA,
        description=(
            "Rows that were refused, each with its stage and reason: catalog rows that failed validation and "
            "sampled products the extractor could not label (written with the shard); products whose image "
            "failed the publish checks (stage `publish`, written by `landing_pages`)."
        ),
    ),
    table_spec(
        INGESTS_TABLE, group=GROUP, code_version=CODE_VERSION, schema=INGESTS_SCHEMA,
        description="The content fingerprint of each shard when it was last ingested; `catalog_refresh_sensor` compares the catalog with it.",
    ),
]


# The settings the step hands to the core, defined there (defaults and docs).
EXTRACTION_SETTINGS = (
    CoreSettings(SampleSpec, rename={"share": "sample_share", "min_count": "sample_min", "max_count": "sample_max"}),
    CoreSettings(
        VLMExtractionConfig,
        set_by_dagster={"domain": "run config `domain`, else described from the shard's categories", "inputs": "the catalog resource's teacher_columns"},
    ),
    CoreSettings(DiscoveryConfig, prefix="type_"),  # the offline teacher's product types
    CoreSettings(IngestCheckConfig),
    # Which products the teacher labels under a call budget (issue 16): `random` is the
    # SampleSpec hash sample above; `uncertainty` makes each materialization one round of
    # `shard_round` (docs/extraction-and-curation.md, "Uncertainty-driven sampling"), as
    # bench/bench_active_sampling.py runs them in one process.
    CoreSettings(SamplingConfig, prefix="active_"),
    CoreSettings(ModelInputSettings),  # decoded images and title tokens for scoring
)


class ExtractionConfig(with_core_settings(Config, *EXTRACTION_SETTINGS)):
    domain: str | None = None  # VLM: what the catalog sells, e.g. "home furnishing"; default: from its categories


@multi_asset(
    name="raw_attributes",
    specs=RAW_ATTRIBUTES_SPECS,
    partitions_def=shard_partitions,
    check_specs=[
        shard_check("attribute_coverage", "raw_attributes", "Share of sampled products with attributes ≥ min_coverage."),
        shard_check("quarantine_share", "raw_attributes", "Share of catalog rows quarantined ≤ max_quarantine_share."),
        shard_check("sample_accounted_for", "raw_attributes", "Every sampled product has attributes or a quarantine reason: nothing lost."),
    ],
)
def raw_attributes(context: AssetExecutionContext, config: ExtractionConfig, catalog: CatalogResource, data_home: DataHomeResource, llm: LLMResource):
    """Validate the shard's rows (bad ones to `quarantine` with a reason), label its sample
    with the teacher, and store products, attributes and the shard's ingest fingerprint.

    With `active_sampling: uncertainty` one materialization is one round: the sample is the
    shard's previous one plus the products the last model is least sure of. Those scores
    are read as state from the warehouse (`product_attribute_scores`), not as an input of
    the graph: scores of round r choose the sample of round r+1, a cycle an asset graph
    cannot declare (like the VLM's answer cache, which makes the previous sample free)."""
    shard = context.partition_key
    warehouse = data_home.warehouse
    settings = IngestSettings(config.to_core(SampleSpec), config.to_core(DiscoveryConfig), catalog.ingest_limits(), catalog.teacher_inputs(), config.to_core(SamplingConfig))
    teacher = teacher_choice(llm, warehouse, config, on_progress=lambda p: context.log.info(p.describe()))
    model_inputs = ModelInputs(data_home.paths.model_inputs) if config.to_core(ModelInputSettings).prepare_at_ingest else None
    ingest = ingest_shard(warehouse, catalog.table(), shard, settings, teacher, log=context.log, model_inputs=model_inputs)
    extraction = ingest.extraction
    tables = written_table_metadata(warehouse, TABLES, shard)
    yield MaterializeResult(
        asset_key="raw_attributes",
        metadata={
            **tables["raw_attributes"],
            "shard": shard,
            "extractor": ingest.teacher.name,
            "prompt_version": ingest.teacher.prompt_version,
            "catalog_rows": ingest.catalog_rows,
            "valid_products": ingest.products.height,
            "quarantined": ingest.quarantine.height,
            "quarantine_reasons": MetadataValue.json(ingest.quarantine_reasons()),
            "cut_products": ingest.loaded.cut_products,
            "cut_fields": MetadataValue.json(ingest.loaded.cut_counts),
            "sampled_products": ingest.sample.height,
            "labeled_products": ingest.labeled,
            "extraction_quarantined": extraction.quarantine.height,
            "attribute_rows": ingest.attributes.height,
            "attributes_per_product": ingest.attributes_per_product,
            "teacher_reads": settings.teacher_inputs.describe(),
            "stopped_by_budget": ingest.budget_stop or "no",
            "teacher_per_key": MetadataValue.json(teacher_agreement(extraction.attributes, ingest.sample)),
            "discovered_product_types": MetadataValue.json({t.value: t.count for t in getattr(ingest.teacher, "product_types", [])[:60]}),
            **{f"stats/{k}": v for k, v in extraction.stats.items()},
            **({"model_inputs_prepared_seconds": round(ingest.prepared.seconds, 1), "model_inputs_images_decoded": ingest.prepared.images_decoded} if ingest.prepared else {}),
            **sampling_metadata(ingest, config.to_core(SamplingConfig)),
        },
        check_results=check_results(ingest.checks(config.to_core(IngestCheckConfig))),
    )
    for table in TABLES[1:]:
        yield MaterializeResult(asset_key=table, metadata={**tables[table], "shard": shard})


def sampling_metadata(ingest: ShardIngest, sampling: SamplingConfig) -> dict:
    """How the shard's sample was chosen: the hash sample, or the round of uncertainty
    sampling this materialization took."""
    round_ = ingest.round
    if round_ is None:
        return {"sampling/method": "random"}
    optional = {"sampling/picks_mean_uncertainty": round_.picked_uncertainty, "sampling/unlabeled_mean_uncertainty": round_.pool_uncertainty}
    return {
        "sampling/method": "uncertainty",
        "sampling/round": round_.index,
        "sampling/status": round_.status,
        "sampling/sampled_of_budget": f"{len(round_.sample)} / {round_.budget}",  # products sent to the teacher so far (this shard)
        "sampling/shard_budget": round_.budget,
        "sampling/budget_all_shards": sampling.budget,
        "sampling/round_target": round_.target,
        "sampling/picks_this_round": len(round_.picked),
        **({"sampling/uncertainty_keys": ", ".join(round_.uncertainty_keys)} if round_.uncertainty_keys else {}),
        **{k: round(v, 4) for k, v in optional.items() if v is not None},
    }


def teacher_choice(llm: LLMResource, warehouse: Warehouse, config: ExtractionConfig, on_progress: Callable[[LLMProgress], None] | None = None) -> ChooseTeacher:
    """The VLM when the llm resource resolves to `openai`, else the shard's offline teacher.
    `on_progress` receives the VLM client's progress (the run log)."""

    def choose(offline: OfflineExtractor, products: pl.DataFrame) -> AttributeExtractor:
        if llm.resolved_extractor() == "openai":
            vlm = config.to_core(VLMExtractionConfig, domain=config.domain or describe_domain(products), inputs=offline.inputs)
            return VLMExtractor(llm.client(warehouse, on_progress), vlm)
        return offline

    return choose
