from dagster import AssetKey, Definitions, DynamicPartitionsDefinition

from pinlanding_assets.definitions import ASSETS, defs

SIX = ["raw_attributes", "curated_vocabulary", "clip_model", "product_attribute_scores", "collection_queries", "landing_pages"]


def test_code_location_loads_with_the_six_assets():
    Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for a in ASSETS for key in a.keys}
    assert set(SIX) <= keys


def test_partitioning_and_checks():
    by_name = {a.key.to_user_string(): a for a in ASSETS}
    for name in ("raw_attributes", "product_attribute_scores"):
        assert isinstance(by_name[name].partitions_def, DynamicPartitionsDefinition)
    for name in ("curated_vocabulary", "clip_model", "collection_queries", "landing_pages"):
        assert by_name[name].partitions_def is None
    checks = {(c.asset_key, c.name) for a in ASSETS for c in a.check_specs}
    assert (AssetKey("landing_pages"), "page_size_bounds") in checks
    assert (AssetKey("clip_model"), "model_beats_prior") in checks
    assert (AssetKey("clip_model"), "heldout_key_precision") in checks
    assert (AssetKey("curated_vocabulary"), "values_per_key_within_bounds") in checks
    blocking = {(c.asset_key.to_user_string(), c.name) for a in ASSETS for c in a.check_specs if c.blocking}
    assert ("clip_model", "heldout_key_precision") in blocking  # a bad model must not make pages
