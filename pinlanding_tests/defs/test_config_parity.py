"""Every setting of the core settings each stage hands to the core is reachable from that
stage's run config (or its resource's config), with the core's default: the Dagster layer
takes them from the core (`defs/config_from_core.py`) instead of copying them. A field added
to a core dataclass without a run-config path (or a reason why the asset sets it) fails here.
"""

import dataclasses
from dataclasses import dataclass

import pytest
from dagster import Config, validate_run_config

from pinlanding_assets.core.active_sampling import SamplingConfig
from pinlanding_assets.core.catalog import IngestLimits, TeacherInputs
from pinlanding_assets.core.checks import IngestCheckConfig, PageCheckConfig, VocabularyCheckConfig
from pinlanding_assets.core.clip_model import ModelSpec
from pinlanding_assets.core.collection_mining import MiningConfig
from pinlanding_assets.core.compute import ComputeSettings
from pinlanding_assets.core.extraction import SampleSpec
from pinlanding_assets.core.gates import GateConfig, ShardGateConfig
from pinlanding_assets.core.llm_client import LLMSettings
from pinlanding_assets.core.matching import MatchingConfig
from pinlanding_assets.core.model_fitting import AssignmentConfig, HeldoutConfig
from pinlanding_assets.core.model_inputs import ModelInputSettings
from pinlanding_assets.core.page_dedup import DedupConfig
from pinlanding_assets.core.page_quality import IndexingConfig
from pinlanding_assets.core.publishing import PublishConfig
from pinlanding_assets.core.scoring import ScoringSettings
from pinlanding_assets.core.site import SiteConfig
from pinlanding_assets.core.style_concepts import ConceptConfig
from pinlanding_assets.core.training import TrainingConfig
from pinlanding_assets.core.type_discovery import DiscoveryConfig
from pinlanding_assets.core.vlm_extraction import VLMExtractionConfig
from pinlanding_assets.core.vocabulary import CurationConfig
from pinlanding_assets.definitions import defs
from pinlanding_assets.defs.collection_assets import CollectionConfig
from pinlanding_assets.defs.config_from_core import CoreSettings, core_default, field_docs, to_run_config, with_core_settings
from pinlanding_assets.defs.extraction_assets import ExtractionConfig
from pinlanding_assets.defs.llm_resources import LLMResource
from pinlanding_assets.defs.model_assets import ModelConfig
from pinlanding_assets.defs.page_assets import PagesConfig
from pinlanding_assets.defs.resources import CatalogResource
from pinlanding_assets.defs.scoring_assets import ScoringConfig
from pinlanding_assets.defs.vocabulary_assets import VocabularyConfig

# Each step's config (op config, or resource config under `resources`), the job that runs
# it, and the core settings dataclasses it hands to the core.
STAGES = {
    "raw_attributes": (ExtractionConfig, "shard_ingest", {SampleSpec, VLMExtractionConfig, DiscoveryConfig, IngestCheckConfig, SamplingConfig, ModelInputSettings}),
    "curated_vocabulary": (VocabularyConfig, "train_model", {CurationConfig, VocabularyCheckConfig, ComputeSettings}),
    "clip_model": (ModelConfig, "train_model", {ModelSpec, TrainingConfig, AssignmentConfig, GateConfig, HeldoutConfig, ComputeSettings}),
    "product_attribute_scores": (ScoringConfig, "shard_scoring", {ScoringSettings, ShardGateConfig, ComputeSettings}),
    "collection_queries": (CollectionConfig, "publish_pages", {MiningConfig, ConceptConfig}),
    "landing_pages": (PagesConfig, "publish_pages", {MatchingConfig, SiteConfig, PublishConfig, PageCheckConfig, DedupConfig, IndexingConfig}),
}
RESOURCES = {
    "llm": (LLMResource, "shard_ingest", {LLMSettings}),
    "catalog": (CatalogResource, "shard_ingest", {IngestLimits, TeacherInputs}),
}
REQUIRED = {CatalogResource: {"location": "/catalog"}}  # fields without a default
PAIRS = [(cls, spec) for cls, _, _ in [*STAGES.values(), *RESOURCES.values()] for spec in cls.core_settings]


def pair_id(pair) -> str:
    return f"{pair[0].__name__}-{pair[1].settings.__name__}"


def core_defaults_of(spec: CoreSettings) -> dict:
    """The core's default of each field the Dagster layer sets."""
    return {f.name: core_default(f) for f in dataclasses.fields(spec.settings) if f.name in spec.set_by_dagster}


def other_value(value, annotation):
    """A valid value other than `value` (the default) of a run-config field."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1 if isinstance(value, int) else value / 2 + 0.25
    if isinstance(value, str):
        return "x" + value
    if isinstance(value, list):
        return value + (["PNG"] if value and value[0] == "JPEG" else [7] if value and isinstance(value[0], int) else ["x"])
    # None: the optional field's other type
    kinds = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    return {int: 7, float: 0.5, str: "x"}[kinds[0]]


@pytest.mark.parametrize("holder", [*STAGES.values(), *RESOURCES.values()], ids=[*STAGES, *RESOURCES])
def test_each_stage_config_holds_the_core_settings_it_hands_to_the_core(holder):
    cls, _, settings = holder
    assert {spec.settings for spec in cls.core_settings} == settings


@pytest.mark.parametrize("pair", PAIRS, ids=[pair_id(p) for p in PAIRS])
def test_every_core_field_is_a_config_field_with_the_core_default_or_set_by_the_asset(pair):
    cls, spec = pair
    for f in dataclasses.fields(spec.settings):
        if f.name in spec.set_by_dagster:
            assert len(spec.set_by_dagster[f.name]) > 10, f"{f.name}: say how the asset sets it"
            continue
        name = spec.run_name(f.name)
        assert name in cls.model_fields, f"{spec.settings.__name__}.{f.name} has no run-config field in {cls.__name__}"
        assert cls.model_fields[name].default == to_run_config(core_default(f)), name


@pytest.mark.parametrize("pair", PAIRS, ids=[pair_id(p) for p in PAIRS])
def test_the_default_config_hands_the_core_its_defaults_and_each_setting_reaches_it(pair):
    cls, spec = pair
    derived = core_defaults_of(spec)
    assert cls(**REQUIRED.get(cls, {})).to_core(spec.settings, **derived) == spec.settings()

    # Every run-config field set to another value arrives in its own core field.
    changed = {}
    for f in spec.from_run_config():
        name = spec.run_name(f.name)
        changed[name] = other_value(cls.model_fields[name].default, cls.model_fields[name].annotation)
    core = cls(**REQUIRED.get(cls, {}), **changed).to_core(spec.settings, **derived)
    for f in spec.from_run_config():
        assert to_run_config(getattr(core, f.name)) == changed[spec.run_name(f.name)], f.name


@pytest.mark.parametrize("pair", [p for p in PAIRS if p[1].set_by_dagster], ids=[pair_id(p) for p in PAIRS if p[1].set_by_dagster])
def test_settings_the_asset_decides_cannot_be_forgotten(pair):
    cls, spec = pair
    with pytest.raises(TypeError, match="from the asset"):
        cls(**REQUIRED.get(cls, {})).to_core(spec.settings)


@pytest.mark.parametrize("step", STAGES)
def test_every_setting_is_accepted_in_the_run_config_of_the_steps_job(step):
    cls, job, _ = STAGES[step]
    every = {name: field.default for name, field in cls.model_fields.items()}
    validate_run_config(defs.resolve_job_def(job), {"ops": {step: {"config": every}}})


@pytest.mark.parametrize("resource", RESOURCES)
def test_every_setting_is_accepted_in_the_resource_config_of_a_run(resource):
    cls, job, _ = RESOURCES[resource]
    every = {name: field.default for name, field in cls.model_fields.items() if not field.is_required()} | REQUIRED.get(cls, {})
    validate_run_config(defs.resolve_job_def(job), {"resources": {resource: {"config": every}}})


def test_descriptions_are_the_core_comments():
    docs = field_docs(TrainingConfig)
    assert "towers see enough updates" in docs["min_steps"]  # the comment lines above the field
    assert docs["augment"] == "random horizontal flips of the training images"  # the comment beside it
    assert ModelConfig.model_fields["min_steps"].description == docs["min_steps"]
    assert LLMResource.model_fields["price_per_1k_input"].description.startswith("USD")


@dataclass(frozen=True)
class WithAnObject:
    inputs: TeacherInputs = TeacherInputs()
    count: int = 1


@dataclass(frozen=True)
class AlsoCounts:
    count: int = 2


def test_a_core_field_run_config_cannot_hold_or_two_fields_of_one_name_fail_when_the_class_is_built():
    with pytest.raises(TypeError, match="WithAnObject.inputs"):
        with_core_settings(Config, CoreSettings(WithAnObject))
    with pytest.raises(ValueError, match="'count'"):
        with_core_settings(Config, CoreSettings(WithAnObject, set_by_dagster={"inputs": "the catalog resource's"}), CoreSettings(AlsoCounts))
    with_core_settings(Config, CoreSettings(WithAnObject, set_by_dagster={"inputs": "the catalog resource's"}), CoreSettings(AlsoCounts, prefix="also_"))
