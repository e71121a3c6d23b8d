"""What a catalog refresh must do, from the shards' fingerprints (no Dagster)."""

from pinlanding_assets.core.ingest_state import catalog_changes


def test_new_changed_removed_and_already_requested_shards() -> None:
    current = {"apparel": "a2", "footwear": "f1", "bags": "b1", "toys": "t2"}
    ingested = {"apparel": "a1", "footwear": "f1", "toys": "t1"}
    requested = {"toys": "t2", "watches": "w1", "footwear": "f0"}
    changes = catalog_changes(current, ingested, requested, registered={"apparel", "footwear", "toys", "watches"})
    assert changes.new == ["bags"] and changes.removed == ["watches"]
    # Toys changed too, but its refresh was already requested for this content.
    assert changes.changed == ["apparel", "bags"] and not changes.nothing
    # Requested now: the changed shards; kept: earlier requests of shards still in the catalog.
    assert changes.requested_after(requested) == {"apparel": "a2", "bags": "b1", "toys": "t2", "footwear": "f0"}

    same = catalog_changes({"apparel": "a1"}, {"apparel": "a1"}, {}, registered={"apparel"})
    assert same.nothing and same.requested_after({}) == {}
