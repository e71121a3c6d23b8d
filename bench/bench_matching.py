"""Matching at scale: Spark (local, a standalone cluster, Spark Connect) vs the DuckDB
reference on generated inputs.

    .venv/bin/python bench/bench_matching.py                      # the full grid
    .venv/bin/python bench/bench_matching.py --products 10000 100000 --collections 1000 --engines duckdb
    .venv/bin/python bench/bench_matching.py --products 100000 --collections 1000 --engines duckdb spark spark-standalone spark-connect

`spark-standalone` and `spark-connect` start a master + one worker (all cores) and a Spark
Connect server (`local[*]`) on loopback from the pyspark package for the run
(`pinlanding_tests/spark_servers.py`) and stop them at the end; their memory is not in
`peak_rss_mb` (only the child's own process tree is). The Spark session is the pipeline's
(`core/spark_settings.py`: 8 shuffle partitions, ...) with `--spark-memory`. Spark gets its
inputs where `landing_pages` puts them (`spark_input_location`): Parquet in a temporary
folder for a local master, Arrow data through the session on a cluster or Connect;
`--spark-inputs arrow|parquet` forces one.

Grid: products x collections (default 10k/100k/1M x 1k/10k), each engine in its own child
process on the same generated inputs (`core.matching.synthetic_inputs`, written once per
size to Parquet and read by both). Per run it prints:

* `match_s`: wall time of the matching call inside the child (DuckDB: register + query +
  decode; Spark: sending or staging the inputs + query + collect + decode; the session is
  already up, and on a cluster its executors registered);
* `total_s`: the child's whole wall time, including reading the inputs, Python imports and
  for Spark the JVM start;
* `peak_rss_mb`: the peak of the summed resident memory of the child and all its
  descendants (the Spark JVM is a grandchild), sampled every 0.1 s (`bench/process_memory.py`);
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

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.process_memory import PeakMemory  # noqa: E402


def load_average() -> float:
    return os.getloadavg()[0]


def stop_tree(process: subprocess.Popen) -> None:
    """Stop a child and its own children (the JVM), which a terminate of the child alone
    would leave running."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    process.terminate()
    process.wait(30)


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
    timed_out = False
    with PeakMemory(process.pid, interval=0.1) as memory:
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            stop_tree(process)
    total = time.perf_counter() - started
    stderr = process.stderr.read() if process.stderr else ""
    out = {"engine": engine, "total_s": round(total, 1), "peak_rss_mb": round(memory.peak / 2**20), "load_before": load_before, "load_after": load_average()}
    if timed_out:
        return out | {"status": f"timed out after {timeout_s:.0f}s"}
    if process.returncode != 0 or not result_path.is_file():
        return out | {"status": f"failed (exit {process.returncode}): {stderr.strip().splitlines()[-1] if stderr.strip() else ''}"}
    return out | json.loads(result_path.read_text()) | {"status": "ok"}


def spark_session(engine: str, spark_master: str, spark_remote: str, spark_memory: str, home: str):
    """The pipeline's session (`core.spark_settings`, as `defs/resources.spark_resource`
    builds it), with `spark_memory` for the engine and a quiet console."""
    from pinlanding_assets.core.spark_settings import classic_spark_settings, spark_sql_settings

    if engine == "spark-connect":
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        return ConnectSession.builder.remote(spark_remote).config(map=spark_sql_settings()).create()
    from pyspark.sql import SparkSession

    settings = classic_spark_settings(spark_master, home) | {"spark.log.level": "ERROR", "spark.ui.showConsoleProgress": "false"}
    if engine == "spark-standalone":  # the driver only collects pages; the executor does the joins
        settings |= {"spark.driver.memory": "2g", "spark.executor.memory": spark_memory}
    else:  # local mode: the driver's JVM is the whole engine
        settings["spark.driver.memory"] = spark_memory
    session = SparkSession.builder.config(map=settings).getOrCreate()
    session.range(2).count()  # executors up before the clock starts, as in a long-lived cluster
    return session


def child(engine: str, inputs: Path, result_path: Path, spark_master: str, spark_remote: str, duckdb_memory: str, spark_memory: str, spark_inputs: str) -> None:
    import polars as pl

    from pinlanding_assets.core.matching import MatchingConfig, match_pages_duckdb, match_pages_spark, spark_input_location

    products = pl.read_parquet(inputs / "products.parquet")
    collections = pl.read_parquet(inputs / "collections.parquet")
    config = MatchingConfig()
    java = None
    if engine == "duckdb":
        started = time.perf_counter()
        pages = match_pages_duckdb(products, collections, config, memory_limit=duckdb_memory)
        match_s = time.perf_counter() - started
    else:
        from pinlanding_assets.core.java_runtime import use_java_runtime

        if engine != "spark-connect":  # the local driver JVM: the Java the pipeline's Spark runs on, said in the row
            runtime = use_java_runtime()
            java = f"{runtime.major} ({runtime.source})"
        with tempfile.TemporaryDirectory() as home:
            session = spark_session(engine, spark_master, spark_remote, spark_memory, home)
            staging = str(Path(home) / "spark-input")
            if spark_inputs == "auto":  # where the pipeline puts them: Parquet for a local master, else Arrow
                input_uri = spark_input_location(None, None if engine == "spark-connect" else spark_master, Path(staging))
            else:
                input_uri = staging if spark_inputs == "parquet" else None
            started = time.perf_counter()
            pages = match_pages_spark(session, products, collections, config, input_uri=input_uri)
            match_s = time.perf_counter() - started
            session.stop()
    pages.write_parquet(result_path.with_suffix(".pages.parquet"))
    result = {"match_s": round(match_s, 2), "pages": pages.get_column("slug").n_unique(), "page_rows": pages.height, "input_rows": products.height} | ({"java": java} if java else {})
    result_path.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--collections", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"], choices=["duckdb", "spark", "spark-standalone", "spark-connect"])
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per run")
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--spark-memory", default="6g", help="spark.driver.memory (local mode: the whole JVM); the executor's or the Connect server's on the servers")
    parser.add_argument("--spark-remote", default="", help=argparse.SUPPRESS)
    parser.add_argument("--spark-inputs", default="auto", choices=["auto", "arrow", "parquet"], help="how Spark gets its inputs (auto: as the pipeline, Parquet for a local master, else Arrow)")
    parser.add_argument("--duckdb-memory", default="6GB", help="DuckDB memory_limit (it spills beyond)")
    parser.add_argument("--workdir", default=None, help="where generated inputs are kept (default: a temp dir)")
    parser.add_argument("--child", nargs=3, metavar=("ENGINE", "INPUTS", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.spark_master, args.spark_remote, args.duckdb_memory, args.spark_memory, args.spark_inputs)
        return

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-matching-"))
    options = ["--spark-memory", args.spark_memory, "--duckdb-memory", args.duckdb_memory, "--spark-inputs", args.spark_inputs]
    print(f"cpus={os.cpu_count()} load_avg_1m={load_average():.2f} workdir={workdir} spark_inputs={args.spark_inputs}", flush=True)
    servers = start_servers(args.engines, workdir, args.spark_memory)
    try:
        results = run_grid(args, workdir, options, servers)
    finally:
        for server, _ in servers.values():
            server.stop()
    print_table(results)


def start_servers(engines: list[str], workdir: Path, memory: str) -> dict:
    """The cluster engines' servers, started once for the whole grid: engine -> (what to
    stop, its master or sc:// URL)."""
    from pinlanding_tests.spark_servers import start_connect_server, start_standalone_cluster

    servers: dict = {}
    try:
        if "spark-standalone" in engines:
            cluster = start_standalone_cluster(workdir / "standalone", worker_cores=os.cpu_count() or 2, worker_memory=memory)
            servers["spark-standalone"] = (cluster, cluster.master_url)
            print(f"standalone cluster at {cluster.master_url}", flush=True)
        if "spark-connect" in engines:
            servers["spark-connect"] = start_connect_server(workdir / "connect", master="local[*]", driver_memory=memory)
            print(f"Spark Connect server at {servers['spark-connect'][1]}", flush=True)
    except BaseException:
        for server, _ in servers.values():
            server.stop()
        raise
    return servers


def engine_options(engine: str, args, servers: dict) -> list[str]:
    if engine == "spark-standalone":
        return ["--spark-master", servers[engine][1]]
    if engine == "spark-connect":
        return ["--spark-remote", servers[engine][1]]
    return ["--spark-master", args.spark_master]


def run_grid(args, workdir: Path, options: list[str], servers: dict) -> list[dict]:
    import polars as pl

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
                row = {"products": n_products, "collections": n_collections} | run_child(engine, inputs, result_path, args.timeout, options + engine_options(engine, args, servers))
                if row["status"] == "ok":
                    pages_by_engine[engine] = pl.read_parquet(result_path.with_suffix(".pages.parquet"))
                results.append(row)
                print(json.dumps(row), flush=True)
            if len(pages_by_engine) >= 2:
                reference_engine, reference = next(iter(pages_by_engine.items()))
                for engine, pages in pages_by_engine.items():
                    if engine != reference_engine:
                        print(f"  {engine} agrees with {reference_engine}: {'yes' if pages.equals(reference) else 'MISMATCH'}", flush=True)
    return results


def print_table(results: list[dict]) -> None:
    print(f"\n{'engine':16} collections  products   match_s  total_s  peak_rss_mb  pages   growth(match_s vs 10x fewer products)")
    for row in results:
        previous = next((r for r in results if r["engine"] == row["engine"] and r["collections"] == row["collections"] and r["products"] * 10 == row["products"] and "match_s" in r), None)
        growth = f"x{row['match_s'] / previous['match_s']:.1f}" if previous and "match_s" in row and previous["match_s"] > 0 else ""
        match_s = row.get("match_s", row["status"])
        print(f"{row['engine']:16} {row['collections']:>11} {row['products']:>9}  {match_s!s:>8} {row['total_s']:>8} {row['peak_rss_mb']:>12}  {row.get('pages', '-')!s:>5}   {growth}  (load {row['load_before']:.1f}->{row['load_after']:.1f})")


if __name__ == "__main__":
    main()
