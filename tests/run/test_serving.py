"""`harness run` answers a trained local model through an inference server it starts, health-checks
and stops (harness.run.serving): llama.cpp's server for a GGUF LoRA adapter, vLLM's (a stand-in
here: no GPU) for a job served by vLLM."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.calls import local_processes, local_server, local_trained
from harness.calls.hf_gguf import close_gguf
from harness.errors import ProviderError
from harness.run import RunOptions, run_suite

ROOT = Path(__file__).resolve().parents[2]
# Large enough that the adapter changes answers: the test can tell it was applied.
SCALE = 0.15
pytestmark = pytest.mark.local_model

SUITE = """
name: served
task: classification
data:
  test: {root}/data/banking77-mini/test.csv
  train: {root}/data/banking77-mini/train.csv
  input: text
  target: category
labels: from-data
output_schema: {root}/data/schemas/banking77-mini-intent.json
metrics: [accuracy]
defaults:
  model: local/smollm2
  params: {{temperature: 0, max_tokens: 32}}
  response_format: output_schema
  system: >-
    You route online-banking questions to an intent. Intents: card_arrival, lost_or_stolen_card,
    exchange_rate, pin_blocked, top_up_limits, age_limit. Answer as JSON {{"intent": ...}}.
  user: "Question: {{{{ text }}}}"
variants:
  - name: base
    kind: prompt
  - name: tuned
    kind: prompt
    model: local/{trained}
baseline: base
"""


def write_adapter(folder: Path, seed: int = 0) -> None:
    """A LoRA adapter GGUF on SmolLM2's q/v projections (random, no training: seconds, not
    minutes) that changes some answers, and its manifest on the shipped base."""
    import numpy as np

    gguf = pytest.importorskip("gguf")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(folder / "adapter.gguf"), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 8.0)
    for i in range(30):
        for name, rows in (("attn_q", 576), ("attn_v", 192)):
            a = rng.standard_normal((8, 576)) * SCALE
            b = rng.standard_normal((rows, 8)) * SCALE
            writer.add_tensor(f"blk.{i}.{name}.weight.lora_a", a.astype("float32"))
            writer.add_tensor(f"blk.{i}.{name}.weight.lora_b", b.astype("float32"))
    close_gguf(writer)
    local_trained.write_manifest(
        folder, "lora", local_processes.model_path(), "adapter.gguf", job_id="test"
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    pytest.importorskip("llama_cpp")
    if local_server.missing_server_deps():
        pytest.skip("llama-cpp-python's server deps (the local extra) are not installed")
    folder = tmp_path_factory.mktemp("models")
    write_adapter(folder / "ft-test")
    old = os.environ.get(local_trained.MODELS_ENV)
    os.environ[local_trained.MODELS_ENV] = str(folder)
    yield folder
    if old is None:
        os.environ.pop(local_trained.MODELS_ENV)
    else:
        os.environ[local_trained.MODELS_ENV] = old
    local_processes.close()


def _suite(tmp_path: Path, trained: str = "ft-test") -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(root=ROOT, trained=trained), encoding="utf-8")
    return path


def _outputs(run_dir: Path, variant: str) -> dict[str, str]:
    lines = (run_dir / "results" / f"{variant}.jsonl").read_text().splitlines()
    return {json.loads(x)["id"]: json.loads(x)["output"] for x in lines}


def _started(monkeypatch) -> list:
    """The server processes harness starts, as they start."""
    procs: list = []
    start = local_server.Server.start

    def spy(self, log, command=None):
        start(self, log, command)
        procs.append(self.process)

    monkeypatch.setattr(local_server.Server, "start", spy)
    return procs


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_started_server_answers_the_adapter_as_the_in_process_workers(
    models, tmp_path, monkeypatch
):
    suite = _suite(tmp_path)
    runs = tmp_path / "runs"
    monkeypatch.setenv(local_server.SERVE_ENV, "in-process")
    inproc = run_suite(suite, RunOptions(limit=6, no_cache=True, runs_dir=runs, variants=["tuned"]))
    monkeypatch.delenv(local_server.SERVE_ENV)
    procs = _started(monkeypatch)
    served = run_suite(suite, RunOptions(limit=6, no_cache=True, runs_dir=runs))

    assert len(procs) == 1 and procs[0].poll() is not None  # one server, stopped with the run
    assert procs[0].args[:3] == [sys.executable, "-m", "llama_cpp.server"]
    assert "--lora_path" in procs[0].args
    tuned = _outputs(served.run_dir, "tuned")
    assert len(tuned) == 6 and tuned == _outputs(inproc.run_dir, "tuned")
    # The adapter is applied (it changes answers), and the answers are grammar-constrained JSON.
    assert tuned != _outputs(served.run_dir, "base")
    assert all(json.loads(v)["intent"] for v in tuned.values())
    log = served.run_dir / "servers" / "ft-test.log"
    assert "POST /v1/chat/completions" in log.read_text()
    note = next(n for n in served.summary["notes"] if "answered by" in n)
    assert re.fullmatch(
        r"local/ft-test: answered by the llama\.cpp server that harness started at "
        r"http://127\.0\.0\.1:\d+/v1 \(Q4_1 base \+ F32 LoRA adapter\); log: .*ft-test\.log",
        note,
    )
    assert local_server.endpoint_for("local/ft-test") is None  # unregistered with the stop


def test_an_error_during_the_calls_stops_the_server(models, tmp_path, monkeypatch):
    from harness.run import execute

    procs = _started(monkeypatch)

    def boom(self, job, result):
        raise RuntimeError("scorer broke")

    monkeypatch.setattr(execute.RecordSink, "finish", boom)
    with pytest.raises(RuntimeError, match="scorer broke"):
        run_suite(
            _suite(tmp_path),
            RunOptions(limit=2, no_cache=True, runs_dir=tmp_path / "runs", variants=["tuned"]),
        )
    assert len(procs) == 1 and procs[0].poll() is not None


def test_a_server_that_never_becomes_healthy_is_an_error_naming_its_log(
    models, tmp_path, monkeypatch
):
    procs = _started(monkeypatch)
    hang = [
        sys.executable,
        "-c",
        "print('loading the model', flush=True); import time; time.sleep(600)",
    ]
    monkeypatch.setattr(local_server.LlamaCppServer, "command", lambda self: hang)
    monkeypatch.setenv("HARNESS_SERVER_TIMEOUT_S", "2")
    with pytest.raises(ProviderError) as err:
        run_suite(
            _suite(tmp_path),
            RunOptions(limit=2, no_cache=True, runs_dir=tmp_path / "runs", variants=["tuned"]),
        )
    assert err.value.exit_code == 3
    assert re.fullmatch(
        r"llama\.cpp server did not answer /v1/models within 2 s — loading the model "
        r"\(log: .*/servers/ft-test\.log\)",
        str(err.value),
    )
    assert procs[0].poll() is not None


def _cli(suite: Path, cwd: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(suite), "--no-cache", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ctrl_c_and_a_server_that_dies_leave_no_server_behind(models, tmp_path):
    suite = _suite(tmp_path)
    run = _cli(suite, tmp_path, "--limit", "6", "--variant", "tuned")
    deadline, pid = time.monotonic() + 240, None
    while time.monotonic() < deadline and pid is None:
        logs = list((tmp_path / "runs").glob("served/*/servers/ft-test.log"))
        text = logs[0].read_text() if logs else ""
        if "POST /v1/chat/completions" in text:
            pid = int(re.search(r"Started server process \[(\d+)\]", text).group(1))
        time.sleep(0.2)
    assert pid is not None, "the server never answered a call"
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert "Resume with:" in stderr
    assert _gone(pid)

    # A server that dies on a broken adapter (llama.cpp loads it at the first request): the run
    # stops at once with exit 3, how it died, its last words and its log — not a retried call
    # per example.
    broken = models / "ft-broken"
    broken.mkdir()
    (broken / "adapter.gguf").write_bytes(b"GGUF not really")
    local_trained.write_manifest(
        broken, "lora", local_processes.model_path(), "adapter.gguf", job_id="broken"
    )
    run = _cli(_suite(tmp_path, "ft-broken"), tmp_path, "--limit", "2", "--variant", "tuned")
    _, stderr = run.communicate(timeout=240)
    assert run.returncode == 3, stderr
    assert re.search(
        r"Error: the llama\.cpp server answering local/ft-broken (was killed by SIG\w+|exited "
        r"\(\d+\)) while serving — .+ \(log: .*servers/ft-broken\.log\)\. 0 results are saved",
        stderr,
    )


def test_a_vllm_job_is_served_by_vllm_through_the_same_lifecycle(tmp_path, monkeypatch):
    """No GPU here: vLLM's command is replaced by the test's OpenAI-compatible server (which
    answers /health as vLLM does); the wiring is what is tested."""
    pytest.importorskip("llama_cpp")
    from harness.finetune.local import vllm

    models = tmp_path / "models"
    folder = models / "ft-vjob"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    options = {"base_model": str(tmp_path / "qwen"), "serve": "vllm", "precision": "bf16"}
    (folder / "job.json").write_text(json.dumps({"job_id": "vjob", "options": options}))
    (folder / "model.json").write_text(
        json.dumps({"kind": "vllm", "file": "adapter", "job_id": "vjob"})
    )
    monkeypatch.setenv(local_trained.MODELS_ENV, str(models))
    commands: list = []
    vllm_command = vllm.VllmServer.command

    def stand_in(self):
        commands.append(vllm_command(self))
        server = ROOT / "tests" / "support" / "openai_server.py"
        answer = '{"intent": "card_arrival"}'
        return [sys.executable, str(server), "--port", str(self.port), "--answer", answer]

    monkeypatch.setattr(vllm.VllmServer, "command", stand_in)
    procs = _started(monkeypatch)
    stats: list = []
    unregister = local_server.unregister

    def before_stop(model_id):  # what the stand-in saw, read while it still runs
        import urllib.request

        port = int(commands[0][commands[0].index("--port") + 1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as r:
            stats.append(json.loads(r.read()))
        unregister(model_id)

    monkeypatch.setattr(local_server, "unregister", before_stop)
    out = run_suite(
        _suite(tmp_path, "ft-vjob"),
        RunOptions(limit=4, no_cache=True, runs_dir=tmp_path / "runs", variants=["tuned"]),
    )
    assert set(_outputs(out.run_dir, "tuned").values()) == {'{"intent": "card_arrival"}'}
    cmd = commands[0]
    assert cmd[cmd.index("--model") + 1] == str(tmp_path / "qwen")
    assert cmd[cmd.index("--lora-modules") + 1] == f"ft-vjob={folder / 'adapter'}"
    assert cmd[cmd.index("--dtype") + 1] == "bfloat16"
    body = stats[0]["last_body"]
    assert "api_key" not in body  # the placeholder key goes as the header, not in the body
    # The adapter's name, the suite's params, and the schema as vLLM's own response_format.
    assert body["model"] == "ft-vjob" and body["temperature"] == 0 and body["max_tokens"] == 32
    assert body["response_format"]["type"] == "json_schema" and "grammar" not in body
    assert stats[0]["requests"] == 4
    assert procs[0].poll() is not None
    note = next(n for n in out.summary["notes"] if "answered by" in n)
    assert note.startswith("local/ft-vjob: answered by the vLLM server that harness started at")
    assert "(dtype bfloat16 + LoRA adapter)" in note


def test_a_run_inside_a_run_reuses_the_outer_runs_server(tmp_path, monkeypatch):
    """The forgetting check runs a suite inside the run: it calls the server already up (a second
    vLLM would not fit beside the first on its GPU), and leaves stopping it to the outer run."""
    from harness.run.serving import Servers

    outer = local_server.Endpoint(
        model_id="local/ft-x", litellm_model="openai/ft-x", api_base="http://127.0.0.1:9/v1",
        engine="llama.cpp server",
    )  # fmt: skip
    local_server.register(outer)
    try:
        inner = Servers(["local/ft-x"])
        assert inner.start(tmp_path) == [] and inner.running == {}
        inner.stop()
        assert local_server.endpoint_for("local/ft-x") is outer
    finally:
        local_server.unregister("local/ft-x")


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_server_does_not_outlive_a_harness_killed_with_sigkill(tmp_path):
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from harness.calls.local_server import LlamaCppServer\n"
        "s = LlamaCppServer(name='ft-x')\n"
        "s.start(Path(sys.argv[1]), command=[sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(s.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    harness = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "x.log")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    pid = int(harness.stdout.readline())
    assert not _gone(pid)
    harness.kill()
    harness.wait()
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(pid)


def _stand_in_vllm_job(tmp_path: Path, monkeypatch, *, answer: str = '{"intent": "card_arrival"}'):
    """A job served by vLLM whose server is the test's OpenAI-compatible one (no GPU here)."""
    pytest.importorskip("llama_cpp")
    from harness.finetune.local import vllm

    folder = tmp_path / "models" / "ft-vjob"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    options = {"base_model": str(tmp_path / "qwen"), "serve": "vllm"}
    (folder / "job.json").write_text(json.dumps({"job_id": "vjob", "options": options}))
    (folder / "model.json").write_text(
        json.dumps({"kind": "vllm", "file": "adapter", "job_id": "vjob"})
    )
    monkeypatch.setenv(local_trained.MODELS_ENV, str(tmp_path / "models"))
    server = ROOT / "tests" / "support" / "openai_server.py"
    monkeypatch.setattr(
        vllm.VllmServer,
        "command",
        lambda self: [sys.executable, str(server), "--port", str(self.port), "--answer", answer],
    )
    return _started(monkeypatch)


def test_a_server_that_dies_mid_run_says_so_not_to_rebuild_llama_cpp(tmp_path, monkeypatch):
    """A started server killed while serving (out of memory, say): the run stops with exit 3, how
    it died and its log, and how to finish the run — not the pipeline's advice for a crashed
    llama.cpp build ("after the rebuild"), which a server's death has nothing to do with."""
    procs = _stand_in_vllm_job(tmp_path, monkeypatch)
    finish = local_server.Endpoint.finish
    answered = []

    def dies_after_two_answers(self, result):
        answered.append(result)
        if len(answered) == 2:
            os.killpg(self.server.process.pid, signal.SIGKILL)
            self.server.process.wait()
        return finish(self, result)

    monkeypatch.setattr(local_server.Endpoint, "finish", dies_after_two_answers)
    with pytest.raises(local_server.LocalModelCrashed) as err:
        run_suite(
            _suite(tmp_path, "ft-vjob"),
            RunOptions(
                limit=6, no_cache=True, runs_dir=tmp_path / "runs", variants=["tuned"],
                concurrency=1,
            ),
        )  # fmt: skip
    message = str(err.value)
    assert err.value.exit_code == 3
    assert "rebuild" not in message, message
    assert re.fullmatch(
        r"the vLLM server answering local/ft-vjob was killed by SIGKILL while serving — .+ "
        r"\(log: .*/servers/ft-vjob\.log\)\. 2 results are saved in .*; once what its log "
        r"shows is fixed, finish the run with: harness run .*suite\.yaml --resume \S+ "
        r"--runs-dir .*runs",
        message,
    )
    assert procs[0].poll() is not None


def test_another_process_on_the_servers_port_does_not_pass_its_health_check(tmp_path):
    """Two runs at once pick their ports apart, but a port can be taken between the pick and the
    server's bind (another run's server, anything): what answers there must be the model this
    server serves, or the run's calls would go to another model without a word."""
    stranger = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "support" / "openai_server.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(stranger.stdout.readline().strip().rsplit(":", 1)[1].split("/")[0])
        server = local_server.LlamaCppServer(name="ft-mine", port=port)
        server.start(
            tmp_path / "ft-mine.log", command=[sys.executable, "-c", "import time; time.sleep(60)"]
        )
        with pytest.raises(ProviderError, match=r"did not answer /v1/models within 2 s"):
            server.wait_healthy(timeout_s=2)
        assert server.process is None  # stopped
    finally:
        stranger.kill()
        stranger.wait()


def test_the_users_provider_key_is_not_sent_to_a_started_server(openai_server, monkeypatch):
    """A trained model's server is reached as `openai/<name>`, and litellm would send it the
    OPENAI_API_KEY of the environment: harness's own server needs no key, and whatever listens on
    that port must not be handed the user's secret."""
    import asyncio

    from harness.calls.engine import Engine
    from harness.types import CallSpec

    secret = "sk-live-users-real-key-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    server = openai_server('{"intent": "card_arrival"}')
    endpoint = local_server.Endpoint(
        model_id="local/ft-key", litellm_model="openai/ft-key", api_base=server.url,
        engine="llama.cpp server",
    )  # fmt: skip
    local_server.register(endpoint)
    try:
        spec = CallSpec(model="local/ft-key", messages=[{"role": "user", "content": "hi"}])
        result = asyncio.run(Engine().call(spec))
    finally:
        local_server.unregister("local/ft-key")
    assert result.error is None and result.output == '{"intent": "card_arrival"}'
    sent = [v for r in server.raw_requests for _, v in r["headers"]]
    assert sent and not any(secret.encode() in v for v in sent)


def test_ctrl_c_while_the_server_starts_stops_it_and_says_how_to_resume(
    models, tmp_path, monkeypatch
):
    """A 7B takes minutes to load: a Ctrl-C then stops the server, and the run ends as any
    interrupted run does — with the command that resumes it, not a bare "interrupted"."""
    from harness.errors import RunInterrupted

    procs = _started(monkeypatch)
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    monkeypatch.setattr(local_server.LlamaCppServer, "command", lambda self: sleeper)

    def ctrl_c(self, timeout_s=0):
        raise KeyboardInterrupt

    monkeypatch.setattr(local_server.Server, "wait_healthy", ctrl_c)
    suite = _suite(tmp_path)
    with pytest.raises(RunInterrupted) as err:
        run_suite(suite, RunOptions(limit=2, no_cache=True, runs_dir=tmp_path / "runs"))
    assert re.fullmatch(
        r"interrupted while starting the servers of the trained models — 0 results saved in "
        rf".*/runs/served/\S+\. Resume with: harness run {suite} --resume \S+ --runs-dir .*runs",
        str(err.value),
    )
    assert procs[0].poll() is not None
