"""The sample catalog in data/ is exactly what its generator writes (`make sample-catalog`)."""

from __future__ import annotations

import filecmp

from pinlanding_assets.core.settings import SAMPLE_CATALOG
from pinlanding_assets.data_tools.sample_catalog import generate_sample_catalog


def test_the_generator_rewrites_the_shipped_sample_catalog_byte_for_byte(tmp_path) -> None:
    generate_sample_catalog(tmp_path)  # the defaults `make sample-catalog` uses; pillow is pinned (its JPEG encoder decides the bytes)
    shipped = sorted(p.relative_to(SAMPLE_CATALOG) for p in SAMPLE_CATALOG.rglob("*") if p.is_file())
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == shipped and len(shipped) == 361  # products.csv and 360 images
    assert all(filecmp.cmp(tmp_path / name, SAMPLE_CATALOG / name, shallow=False) for name in shipped)
