"""The team setup on real servers, on one machine: PostgreSQL (Debian's package) behind an
`mlflow server` with an artifact directory, and a LiteLLM Proxy in front of the test server as
the shared gateway. Three shards run through the proxy, `harness merge` joins them and logs the
one run to the MLflow server; the merged summary equals an unsharded run's.

Each piece that cannot start here skips the test with the reason (no PostgreSQL binaries, no
psycopg2 for MLflow, no `litellm[proxy]`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import FAKE_KEY, intent_answer, write_suite

pytestmark = pytest.mark.team_setup

RUN_FIELDS = {"run_id", "started_at", "finished_at", "merged_from"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.skip(f"{what} exited at start-up (code {proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    pytest.skip(f"{what} did not answer {url} within {timeout:.0f} s")


def pg_bin(name: str) -> str | None:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1]) if found else shutil.which(name)


@pytest.fixture
def postgres(tmp_path):
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    try:
        import psycopg2  # noqa: F401  (MLflow's PostgreSQL driver)
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install psycopg2-binary): MLflow needs it")
    # Outside pytest's tmp_path: as root, PostgreSQL runs as `postgres`, which cannot enter
    # pytest's private /tmp/pytest-of-root.
    base = Path(tempfile.mkdtemp(prefix="harness-pg-"))
    data, sock = base / "pgdata", base / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: PostgreSQL cannot start")
        as_user = [runuser, "-u", "postgres", "--"]
        for p in (base, sock):
            os.chmod(p, 0o777)
    port = free_port()
    init = subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "harness", "--auth=trust", "-E", "UTF8"],
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr.strip().splitlines()[-1:]}")
    options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1"
    start = subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(base / "pg.log")]
        + ["start"],
        capture_output=True,
        text=True,
    )
    if start.returncode != 0:
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()}")
    yield f"postgresql+psycopg2://harness@127.0.0.1:{port}/postgres"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
    )
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def mlflow_server(postgres, tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres]
        + ["--artifacts-destination", str(tmp_path / "artifacts"), "--serve-artifacts"]
        + ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "mlflow.log", "w"),  # noqa: SIM115
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, "mlflow server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture
def litellm_proxy(openai_server, tmp_path):
    try:
        import litellm.proxy.proxy_server  # noqa: F401
    except ImportError as e:
        pytest.skip(f"the LiteLLM Proxy is not installed (pip install 'litellm[proxy]'): {e}")
    server = openai_server(intent_answer)
    config = tmp_path / "proxy.yaml"
    config.write_text(
        f"""model_list:
  - model_name: fake-model
    litellm_params: {{model: openai/fake-model, api_base: "{server.url}", api_key: no-key}}
general_settings: {{master_key: {FAKE_KEY}}}
""",
        encoding="utf-8",
    )
    port = free_port()
    litellm_cli = Path(sys.executable).with_name("litellm")
    cmd = [str(litellm_cli)] if litellm_cli.exists() else [shutil.which("litellm") or "litellm"]
    proc = subprocess.Popen(
        [*cmd, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "proxy.log", "w"),  # noqa: SIM115
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, "LiteLLM Proxy")
        yield f"http://127.0.0.1:{port}/v1", server
    finally:
        proc.terminate()
        proc.wait(20)


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "OPENAI_API_KEY": FAKE_KEY},  # the proxy's key, shared by the team
        timeout=300,
    )


def test_three_shards_through_the_proxy_merge_into_the_mlflow_server(
    mlflow_server, litellm_proxy, tmp_path
):
    proxy_url, server = litellm_proxy
    suite = write_suite(tmp_path, proxy_url, n=15)
    whole = harness(
        "run", str(suite), "--runs-dir", "whole", "--json", "--tracking-uri",
        f"sqlite:///{tmp_path}/solo.db", cwd=tmp_path,
    )  # fmt: skip
    assert whole.returncode == 0, whole.stderr
    assert server.requests == 30  # every call went through the proxy to the server
    # The unsharded run and the shards answer from copies of that cache: the same answers,
    # so their summaries can be compared field for field.
    for d in ("team", "again"):
        (tmp_path / d).mkdir()
        shutil.copy(tmp_path / "whole" / ".cache.sqlite", tmp_path / d / ".cache.sqlite")
    whole = harness(
        "run", str(suite), "--runs-dir", "again", "--json", "--tracking-uri",
        f"sqlite:///{tmp_path}/solo2.db", cwd=tmp_path,
    )  # fmt: skip
    assert whole.returncode == 0, whole.stderr
    for i in (1, 2, 3):
        shard = harness(
            "run", str(suite), "--runs-dir", "team", "--shard", f"{i}/3", "--tracking-uri",
            mlflow_server, cwd=tmp_path,
        )  # fmt: skip
        assert shard.returncode == 0, shard.stderr
    shard_dirs = sorted(str(p) for p in (tmp_path / "team" / "test-suite").iterdir())
    merged = harness(
        "merge", *shard_dirs, "--runs-dir", "team", "--json", "--tracking-uri", mlflow_server,
        cwd=tmp_path,
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    assert "Warning" not in merged.stderr
    assert merged.stdout.startswith("{") and whole.stdout.startswith("{"), (
        merged.stdout[:300],
        whole.stdout[:300],
    )
    m, w = json.loads(merged.stdout), json.loads(whole.stdout)
    assert {k: v for k, v in m.items() if k not in RUN_FIELDS} == {
        k: v for k, v in w.items() if k not in RUN_FIELDS
    }
    # The MLflow server (PostgreSQL + artifact directory) holds the merged run, not the shards.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    runs = [
        r
        for e in client.search_experiments()
        for r in client.search_runs([e.experiment_id], "attributes.status = 'FINISHED'")
    ]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert "summary.json" in artifacts
