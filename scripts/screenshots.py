"""Screenshots of what a manager opens after the flagship run: MLflow's runs table (first view),
the parent run's page, its report.html in MLflow's artifact viewer, the per-example comparison of
the variants (the runs table's evaluation mode), and report.html's top opened from the run directory.

    PYTHONPATH=$PWD python scripts/screenshots.py OUT_DIR [--keep DIR]

It runs suites/clinc-banking.yaml against the test server (scripts/clinc_demo.py: no key, no
internet), serves the store with `mlflow ui` on 127.0.0.1 and drives a headless Chromium through
Playwright at 1600 px. Needs `pip install playwright` and a Chromium (Debian: `apt-get install
chromium`; else `playwright install chromium`); without them it says so and exits 0.
Not part of the test suite: it takes about a minute and a browser.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from harness.track.store import ROLE_TAG, TABLE_FILE, experiment_url, ui_command, ui_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

WIDTH, HEIGHT = 1600, 1000
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def _browser_path() -> str | None:
    """A system Chromium, or None to use Playwright's own download."""
    return next((p for p in CHROMIUM if Path(p).exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow ui exited ({proc.returncode}) before answering")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"mlflow ui did not answer on {url} within {seconds:.0f} s")


def _shoot(page, url: str, path: Path, wait_text: str | None = None, settle: float = 3) -> None:
    page.goto(url)
    page.wait_for_load_state("load")  # never "networkidle": the MLflow UI keeps polling
    if wait_text:
        try:
            page.get_by_text(wait_text, exact=True).first.wait_for(timeout=60_000)
        except Exception as e:  # still take it: the picture shows what is wrong
            print(f"  ({path.name}: {wait_text!r} not seen: {type(e).__name__})")
    _close_assistant(page)
    time.sleep(settle)  # the tables render after the data arrives
    page.screenshot(path=str(path))
    print(f"  {path}")


def _close_assistant(page) -> None:
    """MLflow 3.18 opens its chat assistant over a third of the page: a reader closes it first."""
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Close", exact=True).first.click(timeout=2_000)


def _evaluation_view(page, url: str, path: Path) -> None:
    """The runs table's evaluation mode: examples.json grouped by input, each run's answer."""
    page.goto(url)
    page.wait_for_load_state("load")
    page.get_by_text("gpt-4o", exact=True).first.wait_for(timeout=60_000)
    _close_assistant(page)
    page.locator("input[value=ARTIFACT]").evaluate("e => e.closest('label').click()")
    time.sleep(5)
    try:  # it opens on the first table it finds: the parent's ledger.json
        page.get_by_text("Table:", exact=False).first.click(timeout=10_000)
        page.get_by_role("option", name=TABLE_FILE).click(timeout=5_000)
        page.get_by_role("option", name="ledger.json").click(timeout=5_000)
        page.keyboard.press("Escape")
    except Exception as e:  # still take it: the picture shows what is wrong
        print(f"  ({path.name}: could not pick {TABLE_FILE}: {type(e).__name__})")
    time.sleep(8)
    page.screenshot(path=str(path))
    print(f"  {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for the PNGs")
    ap.add_argument("--keep", type=Path, help="run here and keep runs/ and mlflow.db")
    args = ap.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("skipped: `pip install playwright` (and a Chromium) to take the screenshots")
        return 0
    browser_path = _browser_path()

    import clinc_demo
    from mlflow import MlflowClient

    work = args.keep or Path(tempfile.mkdtemp(prefix="harness-shots-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    if not list(work.glob("runs/*/*/summary.json")):  # a kept run is shot again as it is
        print(f"running suites/clinc-banking.yaml against the test server into {work} ...")
        print(f"harness run exited {clinc_demo.run(work)}")
    run_dir = sorted(work.glob("runs/*/*/summary.json"))[-1].parent
    uri = f"sqlite:///{work}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("clinc-banking")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    parent = next(r for r in runs if r.data.tags.get(ROLE_TAG) == "suite")

    port = _free_port()
    cmd = ui_command(uri, "127.0.0.1", port)
    assert cmd is not None
    server = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(cmd, env=ui_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_up(server, proc)
        eid, pid = exp.experiment_id, parent.info.run_id
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path)
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            _shoot(page, experiment_url(server, eid), args.out / "mlflow-runs.png", "gpt-4o")
            run_url = f"{server}/#/experiments/{eid}/runs/{pid}"
            _shoot(page, run_url, args.out / "mlflow-parent-run.png", "Description")
            artifacts = f"{run_url}/artifacts/report.html"
            _shoot(page, artifacts, args.out / "mlflow-report-artifact.png", "report.html")
            _evaluation_view(page, experiment_url(server, eid), args.out / "mlflow-evaluation.png")
            _shoot(page, (run_dir / "report.html").as_uri(), args.out / "report-top.png")
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
