"""Matching at scale: Spark (local) vs the DuckDB reference on generated inputs.

    .venv/bin/python bench/bench_matching.py                      # the full grid
    .venv/bin/python bench/bench_matching.py --products 10000 100000 --collections 1000 --engines duckdb

Grid: products x collections (default 10k/100k/1M x 1k/10k), each engine in its own child
process on the same generated inputs (`core.matching.synthetic_inputs`, written once per
size to Parquet and read by both). Per run it prints:

* `match_s`: wall time of the matching call inside the child (DuckDB: register + query +
  decode; Spark: Parquet staging + query + collect + decode; the session is already up);
* `total_s`: the child's whole wall time, including reading the inputs, Python imports and
  for Spark the JVM start;
* `peak_rss_mb`: the peak of the summed resident memory of the child and all its
  descendants (the Spark JVM is a grandchild), sampled from /proc every 0.1 s;
* the pages and page rows produced (identical across engines: checked, a mismatch is
  reported as `MISMATCH`);
* the 1-minute load average before and after, and the number of CPUs: the machine is
  shared, and figures measured under load are slower than the machine can do.

Cost growth is printed as the ratio of `match_s` between consecutive product sizes.
A run slower than `--timeout` seconds is stopped and reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _process_table() -> tuple[dict[int, list[int]], dict[int, int]]:
    """(parent -> children, pid -> RSS bytes) from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * page
    return children, rss


def descendants(root_pid: int) -> list[int]:
    children, _ = _process_table()
    out, stack = [], list(children.get(root_pid, []))
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def tree_rss_bytes(root_pid: int) -> int:
    """Summed RSS of a process and all its descendants."""
    children, rss = _process_table()
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def load_average() -> float:
    with open("/proc/loadavg") as handle:
        return float(handle.read().split()[0])


def prepare_inputs(directory: Path, n_products: int, n_collections: int) -> Path:
    from pinlanding_assets.core.matching import synthetic_inputs

    target = directory / f"p{n_products}_c{n_collections}"
    if not (target / "collections.parquet").is_file():
        target.mkdir(parents=True, exist_ok=True)
        products, collections = synthetic_inputs(n_products, n_collections, seed=0)
        products.write_parquet(target / "products.parquet")
        collections.write_parquet(target / "collections.parquet")
    return target


def run_child(engine: str, inputs: Path, result_path: Path, timeout_s: float, options: list[str]) -> dict:
    command = [sys.executable, __file__, "--child", engine, str(inputs), str(result_path), *options]
    load_before = load_average()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    timed_out = False
    while process.poll() is None:
        peak = max(peak, tree_rss_bytes(process.pid))
        if time.perf_counter() - started > timeout_s:
            timed_out = True
            for pid in descendants(process.pid):  # the child's own children (the JVM), by pid
                try:
                    os.kill(pid, 15)
                except ProcessLookupError:
                    pass
            process.terminate()
            process.wait(30)
            break
        time.sleep(0.1)
    total = time.perf_counter() - started
    stderr = process.stderr.read() if process.stderr else ""
    out = {"engine": engine, "total_s": round(total, 1), "peak_rss_mb": round(peak / 2**20), "load_before": load_before, "load_after": load_average()}
    if timed_out:
        return out | {"status": f"timed out after {timeout_s:.0f}s"}
    if process.returncode != 0 or not result_path.is_file():
        return out | {"status": f"failed (exit {process.returncode}): {stderr.strip().splitlines()[-1] if stderr.strip() else ''}"}
    return out | json.loads(result_path.read_text()) | {"status": "ok"}


def child(engine: str, inputs: Path, result_path: Path, spark_master: str, duckdb_memory: str, spark_memory: str) -> None:
    import polars as pl

    from pinlanding_assets.core.matching import MatchingConfig, match_pages_duckdb, match_pages_spark

    products = pl.read_parquet(inputs / "products.parquet")
    collections = pl.read_parquet(inputs / "collections.parquet")
    config = MatchingConfig()
    java = None
    if engine == "duckdb":
        started = time.perf_counter()
        pages = match_pages_duckdb(products, collections, config, memory_limit=duckdb_memory)
        match_s = time.perf_counter() - started
    else:
        from pyspark.sql import SparkSession

        from pinlanding_assets.core.java_runtime import use_java_runtime

        runtime = use_java_runtime()  # the Java the pipeline's Spark runs on, and said in the row
        java = f"{runtime.major} ({runtime.source})"
        session = (
            SparkSession.builder.master(spark_master)
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.driver.memory", spark_memory)
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        with tempfile.TemporaryDirectory() as staging:
            started = time.perf_counter()
            pages = match_pages_spark(session, products, collections, config, input_dir=staging)
            match_s = time.perf_counter() - started
        session.stop()
    pages.write_parquet(result_path.with_suffix(".pages.parquet"))
    result = {"match_s": round(match_s, 2), "pages": pages.get_column("slug").n_unique(), "page_rows": pages.height, "input_rows": products.height} | ({"java": java} if java else {})
    result_path.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--collections", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"], choices=["duckdb", "spark"])
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per run")
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--spark-memory", default="6g", help="spark.driver.memory (local mode: the whole JVM)")
    parser.add_argument("--duckdb-memory", default="6GB", help="DuckDB memory_limit (it spills beyond)")
    parser.add_argument("--workdir", default=None, help="where generated inputs are kept (default: a temp dir)")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "INPUTS", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.spark_master, args.duckdb_memory, args.spark_memory)
        return

    import polars as pl

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-matching-"))
    options = ["--spark-master", args.spark_master, "--spark-memory", args.spark_memory, "--duckdb-memory", args.duckdb_memory]
    print(f"cpus={os.cpu_count()} load_avg_1m={load_average():.2f} workdir={workdir}", flush=True)
    results = []
    for n_collections in args.collections:
        for n_products in args.products:
            started = time.perf_counter()
            inputs = prepare_inputs(workdir, n_products, n_collections)
            print(f"inputs p={n_products} c={n_collections} generated in {time.perf_counter() - started:.1f}s", flush=True)
            pages_by_engine = {}
            for engine in args.engines:
                result_path = workdir / f"result_{engine}_p{n_products}_c{n_collections}.json"
                result_path.unlink(missing_ok=True)
                row = {"products": n_products, "collections": n_collections} | run_child(engine, inputs, result_path, args.timeout, options)
                if row["status"] == "ok":
                    pages_by_engine[engine] = pl.read_parquet(result_path.with_suffix(".pages.parquet"))
                results.append(row)
                print(json.dumps(row), flush=True)
            if len(pages_by_engine) == 2:
                same = pages_by_engine["duckdb"].equals(pages_by_engine["spark"])
                print(f"  engines agree: {'yes' if same else 'MISMATCH'}", flush=True)
    print("\nengine  collections  products   match_s  total_s  peak_rss_mb  pages   growth(match_s vs 10x fewer products)")
    for row in results:
        previous = next((r for r in results if r["engine"] == row["engine"] and r["collections"] == row["collections"] and r["products"] * 10 == row["products"] and "match_s" in r), None)
        growth = f"x{row['match_s'] / previous['match_s']:.1f}" if previous and "match_s" in row and previous["match_s"] > 0 else ""
        match_s = row.get("match_s", row["status"])
        print(f"{row['engine']:7} {row['collections']:>11} {row['products']:>9}  {match_s!s:>8} {row['total_s']:>8} {row['peak_rss_mb']:>12}  {row.get('pages', '-')!s:>5}   {growth}  (load {row['load_before']:.1f}->{row['load_after']:.1f})")


if __name__ == "__main__":
    main()
