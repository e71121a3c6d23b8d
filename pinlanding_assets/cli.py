"""The command line: materialize the whole graph (the main job) for every shard of the catalog.

    make run            (= python -m pinlanding_assets.cli, or `pinlanding` once installed)
    make preflight      (= python -m pinlanding_assets.cli --preflight)

Honours PINLANDING_CATALOG and PINLANDING_HOME; runs are recorded in the Dagster instance at
DAGSTER_HOME (default: <PINLANDING_HOME>/dagster), so `make ui` shows them afterwards.
Exit status: 0 every step ran (or was unchanged); 3 pages were published but some steps
were blocked by a gate or failed (listed at the end; they keep their last good results);
1 no pages could be published; 2 the preflight found the machine or the catalog unfit (no
Java for Spark, wrong Python, no catalog, unwritable data home: one line each) and nothing
ran. `--preflight` (`make preflight`) runs only that check. `--rounds N` runs ingest ->
train -> score N times and publishes after the last (with uncertainty-driven teacher
sampling, one round of picks per pass).

Dagster is imported after the preflight, so a machine that lacks something hears it in the
first second, not after the imports and the training (before: at `publish_pages`).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import yaml

from .core.catalog import shard_fingerprints
from .core.ingest_state import ingested_fingerprints
from .core.preflight import PreflightReport, preflight
from .core.retraining import RetrainPolicy, answers_digest, retraining_due, teacher_answers, trained_sample
from .core.settings import DataHome, default_catalog, default_home, default_shard_column
from .core.warehouse import Warehouse

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions


# Exit statuses of `make run` (documented in the README).
EXIT_OK = 0  # every step ran or was unchanged
EXIT_FAILED = 1  # no pages could be published (no promoted model, or publishing failed)
EXIT_PREFLIGHT = 2  # the preflight found problems (one line each); nothing ran
EXIT_BLOCKED = 3  # pages published, but some steps were blocked by a gate or failed; those keep their last good results


@dataclass
class StageRun:
    label: str
    seconds: float
    outcome: str  # ran | skipped (inputs unchanged) | blocked (a blocking check failed) | failed
    detail: str = ""

    @property
    def skipped(self) -> bool:
        return self.outcome == "skipped"

    @property
    def ok(self) -> bool:
        return self.outcome in ("ran", "skipped")


STATE_TABLE = "main_job_state"  # named after the main job it records; data homes already hold it
# One row per step: the fingerprint of its last attempt and how it ended, and the fingerprint
# of its last success (what its stored results were made from).
STATE_SCHEMA = {"step": pl.String, "fingerprint": pl.String, "outcome": pl.String, "detail": pl.String, "good_fingerprint": pl.String}


def _fingerprint(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _why_not(result) -> tuple[str, str]:
    """(outcome, detail) of an unsuccessful run: the blocking checks that failed, else the
    failed steps' errors."""
    blocked = [e for e in result.get_asset_check_evaluations() if not e.passed and e.severity.value == "ERROR"]
    if blocked:
        return "blocked", "; ".join(f"{e.asset_key.to_user_string()}.{e.check_name}: {e.description or e.metadata}" for e in blocked)
    errors = [e.event_specific_data.error.message.strip().splitlines()[-1] for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.event_specific_data.error]
    return "failed", "; ".join(errors) or "the run failed (see `make ui`)"


def job_code_versions(defs: Definitions, job_name: str) -> dict[str, str | None]:
    """asset name -> code_version (`definitions.asset_code_versions`) of every asset the job
    materializes."""
    from .definitions import asset_code_versions

    selected = {key.to_user_string() for key in defs.resolve_job_def(job_name).asset_layer.selected_asset_keys}
    return {name: version for name, version in sorted(asset_code_versions(defs).items()) if name in selected}


def run_graph(
    defs: Definitions,
    instance: DagsterInstance,
    shards: list[str] | None = None,
    run_config: dict | None = None,
    force: bool = False,
    on_stage: Callable[[str], None] | None = None,
    retrain: RetrainPolicy = RetrainPolicy(),
    publish: bool = True,
) -> list[StageRun]:
    """Register the catalog's shards and run ingest -> model -> scoring -> pages.

    Incremental: a step is skipped when its inputs are the same as at its last success —
    a shard's content fingerprint, the step's run config and the `code_version` of each
    asset it materializes, and for later steps the fingerprints of the steps they read — so
    a re-run over an unchanged catalog and code does almost nothing. `force` runs everything. A step that a gate blocks (or that fails) stops only
    what depends on it: the other shards still score and publish, a blocked shard keeps its
    last good results, a blocked training keeps the last promoted model. Shards that left the
    catalog are unregistered (and retired from the pages by the publish step). The model is
    trained again only when the teacher's answers moved by `retrain.min_sample_change` since
    the promoted model was trained (`core/retraining.py`), or its config or code changed.

    With uncertainty sampling (`active_sampling: uncertainty` in `shard_ingest`'s config) one
    call is one round: a shard is ingested again when the scores stored for it changed (a
    new model scored it: its sample takes the next picks), and any change of the teacher's
    answers retrains (a round's new labels must reach the next round's model).
    `publish: False` stops after scoring (the rounds before the last, `--rounds`).
    """
    from .defs.partitions import shard_partitions

    catalog = defs.resources["catalog"]
    warehouse = Warehouse(DataHome(Path(defs.resources["data_home"].home)).warehouse)
    fingerprints = shard_fingerprints(catalog.table())
    all_shards = sorted(fingerprints)
    shards = shards or all_shards
    known = set(instance.get_dynamic_partitions(shard_partitions.name))
    instance.add_dynamic_partitions(shard_partitions.name, [s for s in all_shards if s not in known])
    for removed in sorted(known - set(all_shards)):
        instance.delete_dynamic_partition(shard_partitions.name, removed)
    stored_state = warehouse.read_table(STATE_TABLE) if warehouse.has_table(STATE_TABLE) else pl.DataFrame(schema=STATE_SCHEMA)
    if set(stored_state.columns) != set(STATE_SCHEMA):  # written by an older version: start afresh
        stored_state = pl.DataFrame(schema=STATE_SCHEMA)
    state = {row["step"]: row for row in stored_state.iter_rows(named=True)}
    good = {step: row["good_fingerprint"] for step, row in state.items() if row["good_fingerprint"]}
    if force:
        state = {}
    config = run_config or {}
    uncertainty = sampling_method(config.get("shard_ingest")) == "uncertainty"
    if uncertainty:
        retrain = RetrainPolicy(0.0)
    stages: list[StageRun] = []

    def remember(label: str, fingerprint: str, outcome: str, detail: str) -> None:
        if outcome == "ran":
            good[label] = fingerprint
        row = {"step": label, "fingerprint": fingerprint, "outcome": outcome, "detail": detail, "good_fingerprint": good.get(label)}
        warehouse.upsert(STATE_TABLE, pl.DataFrame([row], schema=STATE_SCHEMA), ["step"])

    def run(job_name: str, fingerprint: str, partition_key: str | None = None) -> str | None:
        """The step's fingerprint when it ran or was unchanged; None when blocked or failed
        (now, or last time with the same inputs: a gate's verdict on the same inputs does not
        change, so it is reported again, not recomputed)."""
        label = f"{job_name}[{partition_key}]" if partition_key else job_name
        # The code is an input too: a changed asset re-runs its step and, through the
        # fingerprint the step returns, every step after it.
        fingerprint = _fingerprint(fingerprint, job_code_versions(defs, job_name))
        if on_stage:
            on_stage(label)
        last = state.get(label)
        if last is not None and last["fingerprint"] == fingerprint:
            if last["outcome"] == "ran":
                print(f"-> {label}: unchanged, skipped", flush=True)
                stages.append(StageRun(label, 0.0, "skipped"))
                return fingerprint
            if last["outcome"] == "blocked":
                print(f"-> {label}: blocked, inputs unchanged since: {last['detail']}", flush=True)
                stages.append(StageRun(label, 0.0, "blocked", f"{last['detail']} (inputs unchanged since)"))
                return None
        print(f"-> {label}", flush=True)
        started = time.perf_counter()
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, partition_key=partition_key, run_config=config.get(job_name), raise_on_error=False
        )
        seconds = round(time.perf_counter() - started, 1)
        release_freed_memory()
        for evaluation in result.get_asset_check_evaluations():
            if not evaluation.passed:
                print(f"   check failed ({evaluation.severity.value}): {evaluation.asset_key.to_user_string()}.{evaluation.check_name}: {evaluation.description or evaluation.metadata}")
        if not result.success:
            outcome, detail = _why_not(result)
            print(f"   {outcome}: {detail} (run {result.run_id})", flush=True)
            stages.append(StageRun(label, seconds, outcome, detail))
            remember(label, fingerprint, outcome, detail)
            return None
        stages.append(StageRun(label, seconds, "ran"))
        remember(label, fingerprint, "ran", "")
        return fingerprint

    # A shard ingested since by another run (a sensor's refresh) holds other rows than this
    # job's state says: what was last ingested decides, and a shard re-ingests when it differs.
    last_ingested = ingested_fingerprints(warehouse)
    for s in shards:
        if last_ingested.get(s) != fingerprints[s]:
            state.pop(f"shard_ingest[{s}]", None)
    # Uncertainty sampling reads the shard's stored scores (the last round's model): they are an input too.
    ingested = {s: run("shard_ingest", _fingerprint(fingerprints[s], config.get("shard_ingest"), *([stored_scores_version(warehouse, s)] if uncertainty else [])), s) for s in shards}
    # The model reads every shard's stored rows, so its inputs are all shards' ingests.
    all_ingested = {s: ingested.get(s) or good.get(f"shard_ingest[{s}]") for s in all_shards}
    model = run("train_model", _fingerprint(training_basis(warehouse, defs, retrain, force), config.get("train_model"))) or good.get("train_model")
    if model is None:
        print("   no promoted model yet: nothing can be scored", flush=True)
        return stages
    # A blocked shard's scores are its last good ones; publishing reads what is stored.
    scored = {s: run("shard_scoring", _fingerprint(ingested[s], model, config.get("shard_scoring")), s) if ingested[s] else None for s in shards}
    stored = {s: scored.get(s) or good.get(f"shard_scoring[{s}]") for s in all_shards}
    if not publish:
        return stages
    run("publish_pages", _fingerprint(model, stored, config.get("publish_pages")))
    return stages


def sampling_method(ingest_config: dict | None) -> str:
    """`active_sampling` of raw_attributes in a `shard_ingest` run config (default random)."""
    ops = (ingest_config or {}).get("ops", {})
    return str(ops.get("raw_attributes", {}).get("config", {}).get("active_sampling", "random"))


def stored_scores_version(warehouse: Warehouse, shard: str) -> str | None:
    """The model version of the scores stored for a shard (None: not scored yet)."""
    if not warehouse.has_table("product_attribute_scores"):
        return None
    versions = warehouse.read("SELECT DISTINCT model_version FROM product_attribute_scores WHERE shard = ? ORDER BY 1", [shard]).get_column("model_version").to_list()
    return ",".join(versions) or None


def run_rounds(defs: Definitions, instance: DagsterInstance, rounds: int, shards: list[str] | None = None, run_config: dict | None = None, force: bool = False, retrain: RetrainPolicy = RetrainPolicy()) -> list[StageRun]:
    """`rounds` passes of `run_graph` (ingest -> train -> score), publishing after the last
    only: with uncertainty sampling each pass is one round of teacher picks. The stages of
    the last pass are returned (a step blocked earlier is met again there)."""
    stages: list[StageRun] = []
    for index in range(rounds):
        last = index == rounds - 1
        if rounds > 1:
            print(f"== round {index + 1} of {rounds}", flush=True)
        stages = run_graph(defs, instance, shards, run_config, force=force and index == 0, retrain=retrain, publish=last)
        if not last:
            print(summary(stages), flush=True)
    return stages


def release_freed_memory() -> None:
    """Hand the heap a finished step freed back to the OS. The steps run in this one process:
    without it, glibc keeps what training and a large shard's scoring freed (spread over
    the torch and decode threads' arenas) and the next step's peak sits on top of it (the
    full catalog's apparel scoring peaked at 3.05 GiB, 0.7 GiB above its own need)."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): the allocator keeps its own pages
        pass


def training_basis(warehouse: Warehouse, defs: Definitions, policy: RetrainPolicy, force: bool) -> str:
    """What the model step's fingerprint rests on: the teacher's current answers, or, while
    they moved less than the policy allows since the promoted model was trained, the answers
    that model was trained on (so its step stays unchanged and is skipped)."""
    from .core.model_registry import ModelRegistry, NoPromotedModel  # torch: not before the preflight

    current = teacher_answers(warehouse.read_table("raw_attributes"))
    try:
        promoted = ModelRegistry(warehouse, DataHome(Path(defs.resources["data_home"].home)).models).current()
    except NoPromotedModel:
        return answers_digest(current)
    trained = trained_sample(promoted.path)
    decision = retraining_due(current, trained, policy)
    if force or decision.due or trained is None:
        return answers_digest(current)
    print(f"-> train_model: {decision.reason}", flush=True)
    return answers_digest(trained)


def exit_status(stages: list[StageRun]) -> int:
    """`EXIT_OK`, `EXIT_BLOCKED` or `EXIT_FAILED` (see their comments)."""
    published = any(s.label == "publish_pages" and s.ok for s in stages)
    if not published:
        return EXIT_FAILED
    return EXIT_OK if all(s.ok for s in stages) else EXIT_BLOCKED


def summary(stages: list[StageRun]) -> str:
    """What ran, and what was blocked and why, for the end of `make run`."""
    lines = ["steps (s): " + ", ".join(f"{st.label}={st.seconds if st.outcome == 'ran' else st.outcome}" for st in stages)]
    troubled = [st for st in stages if not st.ok]
    if troubled:
        lines.append("blocked or failed (each keeps its last good results; the rest was published):")
        lines += [f"  {st.label}: {st.outcome}: {st.detail}" for st in troubled]
    return "\n".join(lines)


INSTANCE_SETTINGS = "dagster.yaml"  # shipped in the package: run queue, pools, python_logs


def shipped_instance_settings() -> dict:
    """The Dagster instance settings PinLanding ships (pinlanding_assets/dagster.yaml)."""
    return yaml.safe_load(resources.files("pinlanding_assets").joinpath(INSTANCE_SETTINGS).read_text())


def install_instance_settings(dagster_home: Path) -> None:
    """Put the shipped dagster.yaml into a DAGSTER_HOME that has none (never over yours)."""
    target = dagster_home / INSTANCE_SETTINGS
    if not target.exists():
        target.write_text(resources.files("pinlanding_assets").joinpath(INSTANCE_SETTINGS).read_text())
def print_preflight(report: PreflightReport) -> None:
    """Notes on stdout; problems on stderr, one line each, then what that means."""
    for note in report.notes:
        print(f"preflight: {note}", flush=True)
    for problem in report.problems:
        print(f"preflight: {problem}", file=sys.stderr)
    if report.problems:
        print(f"exit status {EXIT_PREFLIGHT}: {len(report.problems)} problem(s) above; nothing was run", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Materialize the whole PinLanding graph.")
    parser.add_argument("--shard", action="append", help="only these shards (default: all)")
    parser.add_argument("--force", action="store_true", help="run every step, even those whose inputs did not change")
    parser.add_argument("--config", type=Path, help="JSON file: {job name: run config}, e.g. "
                        '{"train_model": {"ops": {"clip_model": {"config": {"epochs": 4}}}}}')
    parser.add_argument("--preflight", action="store_true", help="only check Python, Java, the catalog and the data home, then stop")
    parser.add_argument("--retrain-at", type=float, default=RetrainPolicy.min_sample_change, metavar="SHARE",
                        help="train again when this share of the teacher-labeled sample changed since the promoted model was trained "
                             f"(default {RetrainPolicy.min_sample_change}; 0: whenever any answer changed)")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="run ingest -> train -> score N times, publishing after the last: with active_sampling 'uncertainty' "
                             "(shard_ingest's raw_attributes config) each pass is one round of teacher picks (default 1)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    home = default_home()
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(home / "dagster")))
    report = preflight(default_catalog(), default_shard_column(), {"data home (PINLANDING_HOME)": home, "Dagster home (DAGSTER_HOME)": dagster_home})
    print_preflight(report)
    if not report.ok:
        return EXIT_PREFLIGHT
    if args.preflight:
        return EXIT_OK
    os.makedirs(dagster_home, exist_ok=True)
    install_instance_settings(dagster_home)
    from dagster import DagsterInstance

    from .definitions import defs

    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        run_config = json.loads(args.config.read_text()) if args.config else None
        stages = run_rounds(defs, instance, args.rounds, args.shard, run_config, force=args.force, retrain=RetrainPolicy(args.retrain_at))
    status = exit_status(stages)
    print(summary(stages))
    paths = DataHome(home)
    warehouse = Warehouse(paths.warehouse)
    if warehouse.has_table("landing_pages"):
        pages = warehouse.read("SELECT count(DISTINCT slug) AS pages, count(*) AS rows FROM landing_pages").row(0)
        print(f"done in {time.perf_counter() - started:.0f}s: {pages[0]} landing pages ({pages[1]} product placements)")
        print(f"warehouse: {paths.warehouse}")
        print(f"site: {paths.site / 'index.html'}")
    if status != EXIT_OK:
        print(f"exit status {status}: " + ("no pages could be published" if status == EXIT_FAILED else "pages published, some steps blocked (above)"), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
