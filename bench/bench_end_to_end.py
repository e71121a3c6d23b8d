"""End-to-end benchmark: the whole graph on a catalog from an empty data home, then again
with nothing changed.

    PINLANDING_HOME=/tmp/pinlanding-e2e .venv/bin/python bench/bench_end_to_end.py \
        [--catalog ../shared/datasets/fashion-product-images-small] [--keep-home]

Measures, per step of the main job (the same `run_graph` that `make run` uses): wall time
and peak resident memory of this process plus its children (the Spark JVM), sampled every
0.2 s (`bench/process_memory.py`); products/s over the whole run. Targets (issue 15) on the
full shared catalog, 2 cores: first run < 180 s and peak memory < 3 GiB; an unchanged re-run
< 1 min. (`bench/bench_incremental.py` measures a refresh with new products.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's package, whichever is installed

from bench.process_memory import PeakMemory  # noqa: E402


def run_once(label: str, catalog: str, home: Path, teacher_columns: list[str]) -> tuple[float, list, dict[str, int]]:
    from dagster import DagsterInstance

    from pinlanding_assets.definitions import build_definitions
    from pinlanding_assets.defs.resources import CatalogResource, DataHomeResource, spark_resource
    from pinlanding_assets.cli import install_instance_settings, run_graph

    defs = build_definitions(
        {
            "data_home": DataHomeResource(home=str(home)),
            "catalog": CatalogResource(location=catalog, teacher_columns=teacher_columns),
            "spark": spark_resource(home=str(home)),
        }
    )
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    install_instance_settings(home / "dagster")  # as `make run` does
    started = time.perf_counter()
    with PeakMemory(interval=0.2, stage="setup") as sampler, DagsterInstance.get() as instance:
        stages = run_graph(defs, instance, on_stage=lambda s: setattr(sampler, "stage", s))
    wall = time.perf_counter() - started
    print(f"\n== {label}: {wall:.1f}s wall, peak {sampler.peak / 2**30:.2f} GiB (process tree RSS)")
    for stage in stages:
        peak = sampler.peaks.get(stage.label, 0) / 2**30
        print(f"   {stage.label:<40} {'skipped' if stage.skipped else f'{stage.seconds:7.1f}s'}  peak {peak:5.2f} GiB")
    return wall, stages, sampler.peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default=str(REPO.parent / "shared/datasets/fashion-product-images-small"))
    parser.add_argument("--keep-home", action="store_true")
    parser.add_argument("--teacher-columns", default="category",
                        help="comma-separated columns the teacher may read besides title, description, image "
                             "(the default is the pipeline's; naming label columns measures the labels-as-teacher upper bound)")
    args = parser.parse_args()
    teacher_columns = [c for c in args.teacher_columns.split(",") if c]
    home = Path(os.environ.get("PINLANDING_HOME") or tempfile.mkdtemp(prefix="pinlanding-e2e-"))
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    print(f"catalog {args.catalog}\nhome {home} (emptied)\nteacher reads title, description, image, {', '.join(teacher_columns)}\ncores {os.cpu_count()}, load {os.getloadavg()}")

    from pinlanding_assets.core.catalog import locate_catalog, read_catalog_table

    n_rows = read_catalog_table(locate_catalog(args.catalog)).height
    first, _, peaks = run_once("first run (empty home)", args.catalog, home, teacher_columns)
    second, stages, _ = run_once("second run (nothing changed)", args.catalog, home, teacher_columns)
    print(f"\ncatalog rows {n_rows}; first run {n_rows / first:.0f} products/s; "
          f"second run {second:.1f}s with {sum(not s.skipped for s in stages)} steps executed")
    print(f"targets: first run < 180 s: {first < 180}; peak < 3 GiB: {max(peaks.values()) < 3 * 2**30}; unchanged re-run < 60 s: {second < 60}")
    if not args.keep_home:
        shutil.rmtree(home)


if __name__ == "__main__":
    main()
