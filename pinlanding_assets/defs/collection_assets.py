"""`collection_queries`: attribute combinations worth a page, with their titles.

Global (not partitioned): a collection such as "Black Handbags for Women" may draw products
from several shards, so combinations are mined over the assigned attributes of all shards.
Titles come from the LLM writer (validation -> title -> 1-5 score through the `llm`
resource's OpenAI-compatible endpoint, cached) or the offline template writer:
`title_writer` = auto (LLM when an API key is set) | llm | template.

Reads `product_attribute_scores`; `raw_attributes` and `curated_vocabulary` for the
teacher's labeled sample in the vocabulary's terms, from which the offline judge learns which
keys and values go with which product types (`KeyTypeCompatibility`; the model's own
assignments when no sample is stored); and `catalog_products` to retire the scores of products
that left it: the step first deletes the rows of shards that left the catalog from the
per-shard tables (`core/retirement.py`), which the lineage graph cannot draw.

The step's second table, `concept_decompositions`: the style concepts of the concepts file
(plus, with an LLM key, `propose_concepts` the LLM proposes) decomposed into combinations of
the curated vocabulary (`core/style_concepts.py`; `concept_decomposer` = auto (LLM when an
API key is set) | llm | offline (MiniLM on the CPU: it embeds a few hundred values)), every
proposal validated; `landing_pages` makes one page per concept. A concept with no valid
combination is listed in the metadata (`concepts_without_combination`).
"""


from collections.abc import Callable

import polars as pl
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, multi_asset

from ..core.catalog import list_shards
from ..core.collection_mining import COLLECTION_SCHEMA, KeyTypeCompatibility, MiningConfig, TemplateTitleWriter, TitleWriter, learned_compatibility, mine_combinations, write_collections
from ..core.llm_client import CachedLLMClient, LLMProgress
from ..core.retirement import retire_removed
from ..core.style_concepts import CONCEPT_SCHEMA, DECOMPOSERS, ConceptConfig, decomposition_summary, style_concept_decompositions
from ..core.vocabulary import minilm_encoder
from ..core.title_writer import LLMTitleWriter
from .config_from_core import CoreSettings, with_core_settings
from .llm_resources import LLMResource
from .resources import CatalogResource, DataHomeResource
from .automation import PUBLISH_AFTER_SHARD_UPDATES
from .tables import table_spec, written_table_metadata

CODE_VERSION = "5"  # bump when this step's logic (here or in core/collection_mining.py, title_writer.py, retirement.py, style_concepts.py) changes the table

TITLE_WRITERS = ("auto", "llm", "template")


# Two names the mining settings use already: the concepts' get a prefix in run config.
CONCEPT_SETTINGS = CoreSettings(ConceptConfig, rename={"max_attributes": "concept_max_attributes", "min_support": "concept_min_support"})


class CollectionConfig(with_core_settings(Config, CoreSettings(MiningConfig), CONCEPT_SETTINGS)):
    title_writer: str = "auto"  # auto (llm when the llm resource has an API key) | llm | template
    title_model: str | None = None  # default: the llm resource's model


def choose_title_writer(
    config: CollectionConfig,
    llm: LLMResource,
    data_home: DataHomeResource,
    on_progress: Callable[[LLMProgress], None] | None = None,
    compatibility: KeyTypeCompatibility | None = None,
) -> tuple[TitleWriter, CachedLLMClient | None]:
    compatibility = compatibility or KeyTypeCompatibility()
    if config.title_writer not in TITLE_WRITERS:
        raise ValueError(f"title_writer must be one of {TITLE_WRITERS}, got {config.title_writer!r}")
    use_llm = config.title_writer == "llm" or (config.title_writer == "auto" and llm.api_key() is not None)
    if not use_llm:
        return TemplateTitleWriter(config.title_characters, compatibility), None
    if llm.api_key() is None:
        raise ValueError(f"title_writer 'llm' needs an API key in ${llm.api_key_env} (or choose 'template')")
    client = llm.client(data_home.warehouse, on_progress, model=config.title_model)
    return LLMTitleWriter(client, config.title_characters, compatibility), client


def concept_client(config: CollectionConfig, llm: LLMResource, warehouse, on_progress=None) -> CachedLLMClient | None:
    """The LLM client that decomposes the style concepts, or None for the offline decomposer
    (`concept_decomposer` = auto: the LLM when the llm resource has an API key)."""
    decomposer = config.to_core(ConceptConfig).concept_decomposer
    if decomposer not in DECOMPOSERS:
        raise ValueError(f"concept_decomposer must be one of {DECOMPOSERS}, got {decomposer!r}")
    if decomposer == "offline" or (decomposer == "auto" and llm.api_key() is None):
        return None
    if llm.api_key() is None:
        raise ValueError(f"concept_decomposer 'llm' needs an API key in ${llm.api_key_env} (or choose 'offline')")
    return llm.client(warehouse, on_progress, model=config.title_model)


@multi_asset(
    name="collection_queries",
    specs=[
        table_spec(
            "collection_queries", group="pages", code_version=CODE_VERSION, kinds={"openai"}, schema=COLLECTION_SCHEMA,
            deps=["product_attribute_scores", "raw_attributes", "curated_vocabulary", "catalog_products"], automation_condition=PUBLISH_AFTER_SHARD_UPDATES,
            description=(
                "Attribute combinations worth a page, with titles (LLM writer or template) and a quality score, mined "
                "over the assigned attributes of every shard still in the catalog; one row per combination, kept or "
                "dropped with a reason."
            ),
        ),
        table_spec(
            "concept_decompositions", group="pages", code_version=CODE_VERSION, kinds={"openai", "pytorch"}, schema=CONCEPT_SCHEMA,
            deps=["product_attribute_scores", "curated_vocabulary", "collection_queries"], automation_condition=PUBLISH_AFTER_SHARD_UPDATES,
            description=(
                "Style concepts (data/style_concepts.yaml, and the LLM's proposals with a key) decomposed into attribute "
                "combinations of the curated vocabulary (LLM or MiniLM similarity), each validated: one row per proposed "
                "combination, kept or rejected with a reason, and a 'none' row for a concept without a valid one."
            ),
        ),
    ],
)
def collection_queries(context: AssetExecutionContext, config: CollectionConfig, data_home: DataHomeResource, llm: LLMResource, catalog: CatalogResource):
    """Attribute combinations worth a page, with titles, mined over the assigned attributes
    of every shard still in the catalog (shards and products that left it are retired first,
    so they leave the pages)."""
    warehouse = data_home.warehouse
    retirement = retire_removed(warehouse, list_shards(catalog.table()))
    if retirement.shards or retirement.rows_deleted:
        context.log.info("retired shards %s; rows deleted %s", retirement.shards, retirement.rows_deleted)
    assignments = warehouse.read("SELECT product_id, key, value FROM product_attribute_scores WHERE assigned")
    mining = config.to_core(MiningConfig)
    combos = mine_combinations(assignments, mining)
    compatibility, learned_from = learned_compatibility(warehouse.read_table("raw_attributes"), warehouse.read_table("curated_vocabulary"), assignments, mining)
    writer, client = choose_title_writer(config, llm, data_home, on_progress=lambda p: context.log.info(p.describe()), compatibility=compatibility)
    collections = write_collections(combos, mining, writer, compatibility=compatibility)
    warehouse.replace_table("collection_queries", collections)
    kept = collections.filter(pl.col("status") == "kept")
    context.log.info("%d combinations mined, %d collections kept (writer %s)", combos.height, kept.height, writer.name)
    writers = collections.with_columns(pl.col("writer").str.extract(r"^([^ (]+)").alias("w")).group_by("w").len()
    concepts_llm = concept_client(config, llm, warehouse, on_progress=lambda p: context.log.info(p.describe()))
    concepts = style_concept_decompositions(
        warehouse.read_table("curated_vocabulary"), assignments, collections, config.to_core(ConceptConfig), concepts_llm, lambda: minilm_encoder("cpu"), config.title_characters
    )
    warehouse.replace_table("concept_decompositions", concepts)
    summary = decomposition_summary(concepts)
    if summary["concepts_without_combination"]:
        context.log.warning("style concepts without a valid combination (no page): %s", summary["concepts_without_combination"])
    yield MaterializeResult(
        asset_key="collection_queries",
        metadata={
            **written_table_metadata(warehouse, ["collection_queries"])["collection_queries"],
            "combinations": combos.height,
            "kept": kept.height,
            "by_status": MetadataValue.json(dict(collections.group_by("status").len().iter_rows())),
            "by_writer": MetadataValue.json(dict(writers.iter_rows())),
            "quality_histogram": MetadataValue.json({str(q): n for q, n in collections.group_by("quality").len().sort("quality").iter_rows()}),
            "writer": writer.name,
            "compatibility_learned_from": learned_from,
            **compatibility.as_metadata(),
            **{k: MetadataValue.json(v) for k, v in retirement.as_metadata().items()},
            "sample_titles": MetadataValue.json(kept.get_column("title").head(20).to_list()),
            **(client.stats.as_metadata("llm_") if client else {}),
        }
    )
    yield MaterializeResult(
        asset_key="concept_decompositions",
        metadata={
            **written_table_metadata(warehouse, ["concept_decompositions"])["concept_decompositions"],
            **{k: (MetadataValue.json(v) if isinstance(v, (list, dict)) else v) for k, v in summary.items()},
            **(concepts_llm.stats.as_metadata("llm_") if concepts_llm else {}),
        },
    )
