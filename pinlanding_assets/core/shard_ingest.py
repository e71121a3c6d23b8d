"""Ingesting one catalog shard: the `raw_attributes` step.

The shard's rows are validated (a refused row is quarantined with its reason; text longer
than the ingest limits is cut); the offline teacher of the shard reads the pixel colour of
every product whose text names none (it costs nothing: scoring reads it as evidence); a
deterministic sample is labeled by the teacher (the VLM, or the offline teacher itself);
and the shard's products (with the sample flag), attributes, quarantine rows and content
fingerprint are stored, each replacing the shard's earlier rows.

With uncertainty sampling (`SamplingConfig.sampling`, issue 16) the sample is one round of
`active_sampling.shard_round` instead: the shard's previous sample plus the next picks by
the uncertainty of the scores the last model wrote for the shard. Those scores are read as
state from the warehouse (`product_attribute_scores`, and the model's record of what it was
trained on), as the VLM's answers are read from its cache: scores feeding the next sample
are a loop, which an asset graph cannot declare as a dependency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .active_sampling import PoolScores, SamplingConfig, ShardRound, pool_scores_from_table, shard_round, shard_shares, with_embeddings
from .catalog import CatalogTable, IngestLimits, LoadedCatalog, TeacherInputs, load_catalog, read_catalog_table, shard_fingerprints
from .checks import CheckOutcome, IngestCheckConfig, ingest_checks
from .extraction import IN_SAMPLE, PIXEL_COLOR, PIXEL_WEIGHT, AttributeExtractor, ExtractionResult, OfflineExtractor, SampleSpec, select_sample
from .ingest_state import record_ingest
from .model_inputs import ModelInputs, PreparedInputs
from .retraining import trained_sample
from .type_discovery import DiscoveryConfig
from .warehouse import Warehouse

log = logging.getLogger(__name__)

# The teacher of a shard, given its offline teacher and all of its validated products
# (e.g. the VLM when an endpoint is configured); by default the offline teacher itself.
ChooseTeacher = Callable[[OfflineExtractor, pl.DataFrame], AttributeExtractor]


@dataclass(frozen=True)
class IngestSettings:
    """What ingesting a shard is given: the sample, the offline teacher's type discovery,
    and from the catalog, its ingest limits and what the teacher may read. `sampling`:
    `random` labels the `sample` spec's hash sample; `uncertainty` takes one round of
    uncertainty sampling under its budget instead (`sample` is then unused)."""

    sample: SampleSpec = SampleSpec()
    discovery: DiscoveryConfig = DiscoveryConfig()
    limits: IngestLimits = IngestLimits()
    teacher_inputs: TeacherInputs = TeacherInputs()
    sampling: SamplingConfig = SamplingConfig()


@dataclass(frozen=True)
class ShardIngest:
    shard: str
    loaded: LoadedCatalog  # the validated rows and the catalog rows refused
    products: pl.DataFrame  # as stored in catalog_products
    sample: pl.DataFrame  # the products sent to the teacher
    teacher: AttributeExtractor
    extraction: ExtractionResult
    attributes: pl.DataFrame  # as stored in raw_attributes
    quarantine: pl.DataFrame  # as stored: refused catalog rows and sampled products the teacher could not label
    prepared: PreparedInputs | None = None  # the towers' inputs prepared for scoring (None: not asked)
    round: ShardRound | None = None  # uncertainty sampling: the round this ingest took (None: the hash sample)

    @property
    def catalog_rows(self) -> int:
        return self.products.height + self.loaded.quarantine.height

    @property
    def labeled(self) -> int:
        """Sampled products that got attributes."""
        return self.attributes.get_column("product_id").n_unique()

    @property
    def attributes_per_product(self) -> float:
        """Attribute rows per labeled product (0 when none was labeled)."""
        return round(self.attributes.height / self.labeled, 2) if self.labeled else 0.0

    def quarantine_reasons(self) -> dict[str, int]:
        return dict(self.quarantine.group_by("reason").len().iter_rows())

    @property
    def coverage(self) -> float:
        return self.labeled / self.sample.height if self.sample.height else 0.0

    @property
    def quarantine_share(self) -> float:
        """Share of the shard's catalog rows refused by validation."""
        return self.loaded.quarantine.height / self.catalog_rows if self.catalog_rows else 0.0

    def lost_products(self) -> list[str]:
        """Sampled products with neither attributes nor a quarantine reason."""
        accounted = set(self.attributes.get_column("product_id").to_list()) | set(self.extraction.quarantine.get_column("product_id").to_list())
        return sorted(set(self.sample.get_column("product_id").to_list()) - accounted)

    @property
    def budget_stop(self) -> str:
        """Why the teacher stopped asking before the end of the sample ("" when it did not)."""
        return str(self.extraction.stats.get("budget_reached") or "")

    def checks(self, config: IngestCheckConfig) -> list[CheckOutcome]:
        return ingest_checks(self.coverage, self.lost_products(), self.quarantine_share, config)


def offline_teacher(offline: OfflineExtractor, products: pl.DataFrame) -> AttributeExtractor:
    return offline


def ingest_shard(
    warehouse: Warehouse,
    catalog: CatalogTable,
    shard: str,
    settings: IngestSettings,
    choose_teacher: ChooseTeacher = offline_teacher,
    log: logging.Logger = log,
    model_inputs: ModelInputs | None = None,
) -> ShardIngest:
    """Validate, label and store one shard (see the module docstring); with `model_inputs`,
    also decode the valid products' images and tokenize their titles for the towers, so
    scoring reads them (`model_inputs.py`)."""
    fingerprint = shard_fingerprints(catalog, [shard]).get(shard)  # before loading: a later edit is then seen as a change
    loaded = load_catalog(catalog, shards=[shard], limits=settings.limits)
    products = loaded.products
    log.info("shard %s: %d valid products, %d quarantined", shard, products.height, loaded.quarantine.height)
    if loaded.cut_counts:  # the text every later stage reads is the cut one: say so where a person looks
        log.info("shard %s: text cut to the ingest limits in %d products: %s", shard, loaded.cut_products, loaded.cut_counts)
    prepared = None
    if model_inputs is not None:
        prepared = model_inputs.prepare(products.get_column("image_path").to_list(), products.get_column("title").to_list())
        log.info(
            "shard %s: towers' inputs prepared in %.1fs (%d images decoded, %d titles tokenized; the rest were stored)",
            shard, prepared.seconds, prepared.images_decoded, prepared.titles_tokenized,
        )
    if settings.sampling.check().sampling == "uncertainty":
        round_ = sampling_round(warehouse, catalog, shard, products, settings.sampling)
        log.info(
            "shard %s: uncertainty sampling round %d (%s): %d products, %d new picks (shard budget %d)",
            shard, round_.index, round_.status, len(round_.sample), len(round_.picked), round_.budget,
        )
        order = pl.DataFrame({"product_id": round_.sample}, schema={"product_id": pl.String})
        sample = order.join(products, on="product_id", maintain_order="left").select(products.columns)
    else:
        round_ = None
        sample = select_sample(products, settings.sample)
    # The offline teacher's eye costs nothing: every product whose text names no colour gets
    # its pixel colour and what that is worth, stored with the product (scoring reads them).
    offline = OfflineExtractor.for_shard(products, settings.teacher_inputs, settings.discovery)
    products = offline.with_pixel_colors(products)
    sample = sample.join(products.select("product_id", PIXEL_COLOR, PIXEL_WEIGHT), on="product_id", how="left")
    teacher = choose_teacher(offline, products)
    log.info("extractor: %s (%s); teacher reads %s", teacher.name, teacher.prompt_version, settings.teacher_inputs.describe())
    extraction = teacher.extract(sample)
    log.info("extractor %s labeled %d of %d sampled products", teacher.name, extraction.attributes.get_column("product_id").n_unique(), sample.height)
    if extraction.stats.get("budget_reached"):
        log.warning(
            "%s: %d sampled products were not asked (quarantined, not cached: the next run asks them)", extraction.stats["budget_reached"], extraction.stats["budget_stopped"]
        )

    attributes = extraction.attributes.with_columns(pl.lit(shard).alias("shard"), pl.lit(teacher.name).alias("extractor"))
    quarantine = pl.concat(
        [
            loaded.quarantine,
            extraction.quarantine.with_columns(pl.lit(shard).alias("shard"), pl.lit("extraction").alias("stage")).select(loaded.quarantine.columns),
        ]
    )
    products = products.with_columns(pl.col("product_id").is_in(sample.get_column("product_id").implode()).alias(IN_SAMPLE))
    warehouse.replace_rows("catalog_products", products, "shard", [shard])
    warehouse.replace_rows("raw_attributes", attributes, "shard", [shard])
    warehouse.replace_rows("quarantine", quarantine, "shard", [shard])
    record_ingest(warehouse, shard, fingerprint)
    return ShardIngest(shard, loaded, products, sample, teacher, extraction, attributes, quarantine, prepared=prepared, round=round_)


def catalog_rows_per_shard(catalog: CatalogTable) -> dict[str, int]:
    """Rows of each shard in the catalog table (read, not validated: cheap)."""
    return dict(read_catalog_table(catalog).group_by("shard").len().iter_rows())


def shard_targets(catalog: CatalogTable, shard: str, config: SamplingConfig) -> list[int]:
    """The shard's share of each round's target (`active_sampling.shard_shares`)."""
    rows = catalog_rows_per_shard(catalog)
    return [shard_shares(target, rows).get(shard, 0) for target in config.round_targets()]


def sampling_round(warehouse: Warehouse, catalog: CatalogTable, shard: str, products: pl.DataFrame, config: SamplingConfig) -> ShardRound:
    """The shard's next round of uncertainty sampling, from what the warehouse holds: its
    previous sample (`catalog_products.in_sample`), the scores the last model wrote for it
    (`product_attribute_scores`) and whether that model was trained on the shard's current
    labels (its `training_sample` record, `retraining.py`)."""
    previous: list[str] = []
    if warehouse.has_table("catalog_products"):
        previous = warehouse.read(f"SELECT product_id FROM catalog_products WHERE shard = ? AND {IN_SAMPLE} ORDER BY product_id", [shard]).get_column("product_id").to_list()
    pool, saw = None, False
    if warehouse.has_table("product_attribute_scores"):
        scores = warehouse.read(
            "SELECT product_id, key, value, probability, encoder_probability, model_version FROM product_attribute_scores WHERE shard = ?", [shard]
        )
        if not scores.is_empty():
            versions = scores.get_column("model_version").unique().sort().to_list()  # the models that wrote the shard's scores
            pool = pool_scores_from_table(scores, config, scoring_space(warehouse, versions))
            if config.reads_embeddings:
                pool = pool_embeddings(warehouse, pool, shard)
            labeled = set(warehouse.read("SELECT DISTINCT product_id FROM raw_attributes WHERE shard = ?", [shard]).get_column("product_id").to_list()) if warehouse.has_table("raw_attributes") else set()
            saw = all(labeled <= trained_products(warehouse, version) for version in versions)
    return shard_round(products.get_column("product_id").to_list(), previous, pool, saw, shard_targets(catalog, shard, config), config)


def pool_embeddings(warehouse: Warehouse, pool: PoolScores, shard: str) -> PoolScores:
    """`pool` with each product's embedding by the model that wrote its scores (the
    `product_embeddings` cache scoring fills), for spread and density; without them, and a
    warning, when the cache lacks any (the round is then chosen on uncertainty alone)."""
    cached = pl.DataFrame(schema={"product_id": pl.String, "embedding": pl.List(pl.Float32)})
    if warehouse.has_table("product_embeddings"):
        cached = warehouse.read(
            "SELECT e.product_id, e.embedding FROM product_embeddings e JOIN (SELECT DISTINCT product_id, model_version FROM product_attribute_scores WHERE shard = ?) s"
            " ON e.product_id = s.product_id AND e.model_version = s.model_version",
            [shard],
        )
    pool, missing = with_embeddings(pool, cached)
    if missing:
        log.warning("shard %s: %d of %d scored products have no cached embedding: this round is chosen without spread or density (score the shard again)", shard, missing, len(pool.product_ids))
    return pool


def promoted_model_dir(warehouse: Warehouse, model_version: str) -> Path | None:
    """The checkpoint directory of the promoted model `model_version` (None when the
    registry has no such model)."""
    from .model_registry import REGISTRY_TABLE  # torch: only when a model is asked about

    if not warehouse.has_table(REGISTRY_TABLE):
        return None
    paths = warehouse.read(f"SELECT path FROM {REGISTRY_TABLE} WHERE version = ? AND status = 'promoted'", [model_version]).get_column("path").to_list()
    return Path(paths[-1]) if paths else None


def trained_products(warehouse: Warehouse, model_version: str) -> set[str]:
    """The products whose teacher answers the promoted model `model_version` was trained on
    (empty when it has no record of them)."""
    directory = promoted_model_dir(warehouse, model_version)
    trained = trained_sample(directory) if directory is not None else None
    return set(trained.get_column("product_id").to_list()) if trained is not None else set()


def scoring_space(warehouse: Warehouse, model_versions: list[str]) -> pl.DataFrame | None:
    """The attribute space (key, value, frequency) of the models that wrote a shard's
    scores, as saved with their checkpoints: what `active_sampling.learned_keys` reads.
    Several models (a shard scored partly by each): their frequencies summed. None when no
    checkpoint with its settings is found (uncertainty then averages every key)."""
    from .clip_model import saved_settings

    frames = []
    for version in model_versions:
        directory = promoted_model_dir(warehouse, version)
        settings = saved_settings(directory) if directory is not None else None
        if settings is not None:
            frames.append(pl.DataFrame(settings["attributes"]).select("key", "value", "frequency"))
    if not frames:
        return None
    return pl.concat(frames).group_by("key", "value", maintain_order=True).agg(pl.col("frequency").sum())
