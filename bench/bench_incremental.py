"""Incremental cost: new products in one shard re-run that shard's ingest and scoring and the
publish, nothing else (issue 15, item 4: < 30 s on the full catalog).

    .venv/bin/python bench/bench_incremental.py [--shard footwear] [--share 0.01] \
        [--catalog ../shared/datasets/fashion-product-images-small] [--workdir /tmp/pinlanding-incr]

1. A working copy of the catalog under `--workdir`: its images hard-linked (same size and
   modification time, so the fingerprints of the untouched shards are those of the original
   files; a copy where the file system cannot link), its table without a deterministic
   `--share` of `--shard`'s products (the smallest blake2b of their ids).
2. The whole graph from an empty home on that copy (`run_graph`, as `make run`): the state
   a user is in before the new products arrive. Reported, not the target.
3. The withheld products are added back to the table; the graph runs again (timed: the
   target). Printed: the steps that ran and their time and peak memory, whether a model was
   trained (the retrain policy decides: `RetrainPolicy.min_sample_change`), the new products
   scored and on pages.

`--home` reuses the home and copy of an earlier run of step 2 (`--keep`) and only times 3.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_end_to_end import run_once  # noqa: E402


def link_tree(source: Path, target: Path) -> None:
    """`target` holds `source`'s files as hard links (copies where linking fails)."""
    shutil.copytree(source, target, copy_function=_link_or_copy, dirs_exist_ok=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def withheld_ids(rows: list[dict], shard_column: str, shard_value: str, share: float) -> set[str]:
    ids = sorted((r["id"] for r in rows if r[shard_column] == shard_value), key=lambda i: hashlib.blake2b(i.encode(), digest_size=8).digest())
    return set(ids[: max(1, round(len(ids) * share))])


def write_table(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", default=str(REPO.parent / "shared/datasets/fashion-product-images-small"))
    parser.add_argument("--shard", default="Footwear", help="the shard (masterCategory value) that gets the new products")
    parser.add_argument("--share", type=float, default=0.01, help="share of the shard's products that are new")
    parser.add_argument("--workdir", default=None, help="where the catalog copy and the home live (default: a temp dir)")
    parser.add_argument("--home", default=None, help="reuse this home and the catalog copy beside it (from --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    parser.add_argument("--teacher-columns", default="category")
    args = parser.parse_args()
    teacher_columns = [c for c in args.teacher_columns.split(",") if c]
    source = Path(args.catalog)
    work = Path(args.home).parent if args.home else Path(args.workdir or tempfile.mkdtemp(prefix="pinlanding-incr-"))
    catalog, home = work / "catalog", work / "home"

    with (source / "styles.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    new = withheld_ids(rows, "masterCategory", args.shard, args.share)
    print(f"catalog {source} ({len(rows)} rows); {len(new)} new products in shard {args.shard} ({args.share:.1%}); work {work}")
    print(f"cores {os.cpu_count()}, load {os.getloadavg()}")

    if not args.home:
        for path in (catalog, home):
            if path.exists():
                shutil.rmtree(path)
        link_tree(source / "images", catalog / "images")
        write_table(catalog / "styles.csv", [r for r in rows if r["id"] not in new])
        home.mkdir(parents=True)
        run_once("before: the whole graph without the new products (empty home)", str(catalog), home, teacher_columns)

    write_table(catalog / "styles.csv", rows)
    wall, stages, peaks = run_once(f"after: {len(new)} new products in {args.shard}", str(catalog), home, teacher_columns)
    ran = [s.label for s in stages if not s.skipped]

    import duckdb

    from pinlanding_assets.core.settings import DataHome

    with duckdb.connect(str(DataHome(home).warehouse), read_only=True) as db:
        ids = sorted(new)
        scored = db.execute("SELECT count(DISTINCT product_id) FROM product_attribute_scores WHERE product_id IN (SELECT UNNEST(?::VARCHAR[]))", [ids]).fetchone()[0]
        on_pages = db.execute("SELECT count(DISTINCT product_id) FROM landing_pages WHERE product_id IN (SELECT UNNEST(?::VARCHAR[]))", [ids]).fetchone()[0]
        models = db.execute("SELECT count(*) FROM clip_model").fetchone()[0]
    print(f"\nsteps run: {ran}")
    print(f"new products scored {scored}/{len(new)}, on pages {on_pages}; models in the registry {models}")
    trained = any(label.startswith("train_model") for label in ran)
    print(f"targets: < 30 s: {wall < 30} ({wall:.1f} s); no retraining: {not trained}; peak {max(peaks.values(), default=0) / 2**30:.2f} GiB")
    if not args.keep and not args.home:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
