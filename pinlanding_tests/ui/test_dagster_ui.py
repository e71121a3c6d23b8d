"""The Dagster UI in a real browser: `dagster dev` on loopback with a temporary DAGSTER_HOME
and PINLANDING_HOME over the sample catalog, driven by headless Chromium through Playwright.

It opens the global asset graph and finds the six assets and the tables their steps write,
with their kind tags, launches a materialization of the `apparel` shard of `raw_attributes`
from the asset's Materialize dialog, waits for that run, reads the shard's check results on
the asset's Checks tab, and the row count and column schema of `catalog_products` (written
by the same step) on its asset page. Screenshots of every stage
are saved under pytest's tmp dir (and copied to $PINLANDING_UI_SCREENSHOTS if set); their
paths are printed.

Needs Debian's `chromium` and the `playwright` Python package (no Playwright browser
download): skipped, with the reason, only when one of them is not installed, and failed
instead when PINLANDING_REQUIRE_BROWSER=1 (CI).
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from pinlanding_assets.core.catalog import list_shards, locate_catalog
from pinlanding_assets.core.settings import SAMPLE_CATALOG, WAREHOUSE_FILE
from pinlanding_assets.core.warehouse import Warehouse

from .dagster_server import DagsterDevServer, prepare_dagster_home

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SIX_ASSETS = ["raw_attributes", "curated_vocabulary", "clip_model", "product_attribute_scores", "collection_queries", "landing_pages"]
TABLE_ASSETS = ["catalog_products", "quarantine", "shard_ingests", "product_embeddings", "concept_decompositions", "published_pages", "retired_slugs", "page_refresh_log"]
# Kind tags as the graph shows them (the UI's display names of the kinds).
GRAPH_KINDS = {
    "raw_attributes": ["DuckDB", "OpenAI"],
    "catalog_products": ["DuckDB"],
    "clip_model": ["DuckDB", "PyTorch"],
    "product_attribute_scores": ["DuckDB", "PyTorch", "Spark"],
    "landing_pages": ["DuckDB", "Spark"],
    "collection_queries": ["DuckDB", "OpenAI"],
}
TABLE_PAGE = "catalog_products"  # materialized by the run below, with the shard's rows
TABLE_PAGE_COLUMNS = ["product_id", "shard", "title", "image_hash", "pixel_color", "in_sample"]
SHARD = "apparel"
RAW_ATTRIBUTES_CHECKS = ["attribute_coverage", "quarantine_share"]
# The graph draws full nodes (names, kind tags) only above a zoom level; with 14 assets in four
# groups it fits a 1920x1080 window only below it, so the graph gets a larger window.
GRAPH_VIEWPORT = {"width": 3200, "height": 1800}
PAGE_VIEWPORT = {"width": 1920, "height": 1080}
UI_TIMEOUT_MS = 60_000  # generous: 2 shared cores, the first page load compiles a lot of JS
RUN_TIMEOUT_S = 300

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the skip below says what to install
    sync_playwright = None

MISSING = [
    reason
    for missing, reason in [
        (sync_playwright is None, "playwright is not installed (.venv/bin/pip install playwright==1.65.2)"),
        (CHROMIUM is None, "chromium is not installed (apt-get install -y chromium)"),
    ]
    if missing
]


def require_browser() -> None:
    """Skip when the browser stack is genuinely absent; CI sets PINLANDING_REQUIRE_BROWSER=1
    so that a broken install fails instead of skipping."""
    if not MISSING:
        return
    if os.environ.get("PINLANDING_REQUIRE_BROWSER") == "1":
        pytest.fail("browser test required (PINLANDING_REQUIRE_BROWSER=1) but " + "; ".join(MISSING))
    pytest.skip("; ".join(MISSING))


@pytest.fixture
def dagster_ui(tmp_path):
    """A running `dagster dev` whose instance already knows the catalog's shards."""
    require_browser()
    from dagster import DagsterInstance

    dagster_home = prepare_dagster_home(tmp_path / "dagster_home")
    server = DagsterDevServer(
        dagster_home,
        env={"PINLANDING_HOME": str(tmp_path / "pinlanding_home"), "PINLANDING_CATALOG": str(SAMPLE_CATALOG)},
        log_path=tmp_path / "dagster_dev.log",
    )
    with DagsterInstance.local_temp(str(dagster_home)) as instance:
        # Register the shards as the catalog sensor would (it is off by default); this also
        # creates the instance's databases before the server opens them.
        shards = list_shards(locate_catalog(SAMPLE_CATALOG))
        known = set(instance.get_dynamic_partitions("catalog_shard"))
        instance.add_dynamic_partitions("catalog_shard", [s for s in shards if s not in known])
        assert SHARD in instance.get_dynamic_partitions("catalog_shard")
        server.start()
        try:
            server.wait_until_ready()
            yield server, instance
        finally:
            server.stop()


def dismiss_welcome_dialog(page: "Page") -> None:
    skip = page.get_by_role("button", name="Skip")
    if skip.count():  # only on a fresh instance with the nux enabled
        skip.first.click()


def shot(page: "Page", directory: Path, name: str, shots: list[Path]) -> None:
    path = directory / f"{len(shots) + 1:02d}-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shots.append(path)


def hide_side_panels(page: "Page") -> None:
    page.get_by_role("button", name="Hide navigation").click()
    jump_to = page.get_by_placeholder("Jump to…")
    if jump_to.count() and jump_to.is_visible():  # the asset tree beside the graph
        page.locator("button:has([aria-label=panel_show_right])").last.click()
        expect(jump_to).to_be_hidden()


def keep_screenshots(shots: list[Path]) -> list[Path]:
    """Also copy them to $PINLANDING_UI_SCREENSHOTS (e.g. a CI artifact folder), if set:
    pytest keeps only its last three tmp dirs."""
    target = os.environ.get("PINLANDING_UI_SCREENSHOTS")
    if not target:
        return shots
    Path(target).mkdir(parents=True, exist_ok=True)
    return shots + [Path(shutil.copy2(p, Path(target) / p.name)) for p in shots]


def expand_all_groups(page: "Page") -> None:
    """Groups start collapsed when there are several; the graph's settings menu expands them."""
    page.locator("button:has([aria-label=settings])").last.click()
    menu_item = page.get_by_role("menuitem", name=re.compile("(Expand|Collapse) all groups"))
    expect(menu_item).to_be_visible()
    if "Expand" in menu_item.inner_text():
        menu_item.click()
    if menu_item.is_visible():
        page.keyboard.press("Escape")
    expect(menu_item).to_be_hidden()


def asset_node(page: "Page", name: str):
    """The asset's node in the graph: its name, its rows and its kind tags."""
    return page.locator("[class*=assetNodeContainer]").filter(has=page.get_by_text(name, exact=True))


def wait_for_run(instance, run_id_prefix: str, timeout: float):
    from dagster import DagsterRunStatus

    deadline = time.monotonic() + timeout
    run = None
    while time.monotonic() < deadline:
        matches = [r for r in instance.get_runs(limit=20) if r.run_id.startswith(run_id_prefix)]
        run = matches[0] if matches else None
        if run is not None and run.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            return run
        time.sleep(2)
    raise AssertionError(f"run {run_id_prefix} not finished after {timeout}s (status {run.status if run else 'unknown'})")


def run_failure_text(instance, run_id: str) -> str:
    lines = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        error = getattr(getattr(event, "event_specific_data", None), "error", None) or getattr(getattr(event, "engine_event_data", None), "error", None)
        if event is not None and (event.is_failure or error is not None):
            lines.append(f"{event.event_type_value}: {entry.message}\n{error.message if error else ''}")
    return "\n".join(lines)[-4000:]


def test_asset_graph_materialize_a_shard_and_see_its_checks(dagster_ui, tmp_path, capsys):
    server, instance = dagster_ui
    shots: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=GRAPH_VIEWPORT)
            page.set_default_timeout(UI_TIMEOUT_MS)
            try:
                # 1. The global asset graph has the six assets.
                page.goto(f"{server.url}/asset-groups", wait_until="domcontentloaded")
                expect(page.get_by_text("Global asset lineage")).to_be_visible()
                page.wait_for_timeout(2000)  # the welcome dialog, if any, opens after the first render
                dismiss_welcome_dialog(page)
                hide_side_panels(page)  # room for the graph to draw full node names
                expand_all_groups(page)
                for name in SIX_ASSETS + TABLE_ASSETS:
                    expect(page.get_by_text(name, exact=True).first, f"asset {name} in the graph").to_be_visible()
                for name, kinds in GRAPH_KINDS.items():
                    for kind in kinds:
                        expect(asset_node(page, name).get_by_text(kind, exact=True), f"kind {kind} on {name}").to_be_visible()
                shot(page, tmp_path, "asset-graph", shots)
                page.set_viewport_size(PAGE_VIEWPORT)

                # 2. Materialize one shard of raw_attributes from its Materialize dialog.
                page.goto(f"{server.url}/assets/raw_attributes", wait_until="domcontentloaded")
                page.get_by_role("button", name="Materialize…").click()
                # The step writes the shard's other tables too, and the UI says so first.
                additional = page.get_by_role("dialog").filter(has_text="Additional assets will be materialized")
                for table in ("catalog_products", "quarantine", "shard_ingests"):
                    expect(additional.get_by_role("link", name=table), f"{table} announced").to_be_visible()
                shot(page, tmp_path, "additional-assets", shots)
                additional.get_by_role("button", name="Confirm").click()
                dialog = page.get_by_role("dialog")
                expect(dialog.get_by_text(re.compile(r"^Launch runs to materialize"))).to_be_visible()
                dialog.get_by_text("Select a partition or create one").click()
                page.get_by_placeholder("Filter partitions").fill(SHARD)
                page.get_by_title(SHARD, exact=True).last.click()
                page.get_by_placeholder("Filter partitions").press("Escape")  # closes the picker, not the dialog
                expect(page.get_by_placeholder("Filter partitions")).to_be_hidden()
                expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
                shot(page, tmp_path, "launch-dialog", shots)
                dialog.get_by_role("button", name="Launch 1 run").click()
                toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
                expect(toast).to_be_visible()
                run_id_prefix = re.search(r"Launched run ([0-9a-f]{8})", toast.inner_text()).group(1)

                # 3. Wait for the run (launched by the daemon in a run worker).
                run = wait_for_run(instance, run_id_prefix, RUN_TIMEOUT_S)
                assert run.tags.get("dagster/partition") == SHARD
                assert run.status.value == "SUCCESS", f"run {run.run_id} {run.status.value}:\n{run_failure_text(instance, run.run_id)}"
                recorded = {
                    e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data.passed
                    for e in instance.all_logs(run.run_id)
                    if e.dagster_event is not None and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
                }
                assert set(RAW_ATTRIBUTES_CHECKS) <= set(recorded), recorded

                # 4. The run page and the asset's Checks tab show the shard's results.
                page.goto(f"{server.url}/runs/{run.run_id}", wait_until="domcontentloaded")
                expect(page.get_by_text("Success", exact=True).first).to_be_visible()
                shot(page, tmp_path, "run", shots)
                page.goto(f"{server.url}/assets/raw_attributes?view=checks", wait_until="domcontentloaded")
                for check in RAW_ATTRIBUTES_CHECKS:
                    status = "Passed" if recorded[check] else "Failed"
                    row = page.locator("[class*=checkRow]").filter(has=page.get_by_title(check, exact=True))
                    expect(row).to_contain_text("Succeeded" if recorded[check] else "Failed")
                    row.click()
                    details = page.get_by_text("Latest execution", exact=True).locator("xpath=ancestor::*[.//*[text()='Metadata']][1]")
                    expect(page.get_by_text(check, exact=True).first).to_be_visible()
                    expect(details.get_by_text(status, exact=True)).to_be_visible()
                    expect(details.get_by_text(SHARD, exact=True), "the evaluation's own partition").to_be_visible()
                    for key in ("value", "threshold"):  # the measured value and its bar
                        expect(details.get_by_text(key, exact=True).first).to_be_visible()
                    shot(page, tmp_path, f"check-{check}", shots)

                # 5. A table the same step wrote: its row count (the table's, in DuckDB) and columns.
                rows = Warehouse(tmp_path / "pinlanding_home" / WAREHOUSE_FILE).row_counts([TABLE_PAGE])[TABLE_PAGE]
                assert rows > 0
                page.goto(f"{server.url}/assets/{TABLE_PAGE}", wait_until="domcontentloaded")
                row_count = page.get_by_text("Row count", exact=True).locator("xpath=..")
                expect(row_count).to_contain_text(f"{rows:,}")
                for column in TABLE_PAGE_COLUMNS:
                    expect(page.get_by_text(column, exact=True).first, f"column {column}").to_be_visible()
                shot(page, tmp_path, f"table-{TABLE_PAGE}", shots)
            except Exception:
                shot(page, tmp_path, "failure", shots)
                raise
            finally:
                shots = keep_screenshots(shots)
                with capsys.disabled():
                    print("\nDagster UI screenshots:\n" + "\n".join(f"  {p}" for p in shots))
                    print(f"dagster dev log: {server.log_path}")
        finally:
            browser.close()

