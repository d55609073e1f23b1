"""The `local` fine-tuning backend: train on this machine, serve with the local provider.

The protocol `harness finetune` drives (the same for a provider's API):
    estimate_usd(spec, train_tokens) -> float | None
    submit(spec, train_path, val_path, metadata) -> job_id      (returns once the job exists)
    poll(job_id) -> JobState                                     (new events since the last poll)
    cancel(job_id) -> JobState
`spec` is the suite's `finetune:` block (a mapping or an object with those attributes), read
through LocalOptions. The trained model is `local/ft-<job id>`.

Cost is measured, not quoted: the training process's wall-clock × `price_per_hour`.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.calls.local_trained import models_dir
from harness.data.dataset import file_hash
from harness.errors import SuiteError
from harness.finetune.backends import TERMINAL, FinetuneSpec, JobState, backend
from harness.finetune.local.job import (
    JOB,
    LOG,
    STATE,
    LocalOptions,
    close_state,
    job_folder,
    read_events,
    read_json,
    update_state,
    write_json_atomic,
)

# How long cancel() waits for the trainer to stop at a step boundary before killing it.
CANCEL_GRACE_S = 20.0

# Events already handed to each job's watcher in this process (poll returns only new ones).
_seen: dict[str, int] = {}


def options(spec: Any) -> LocalOptions:
    """The local backend's settings from the `finetune:` block; SuiteError naming the key."""
    try:
        if isinstance(spec, LocalOptions):
            return spec
        if isinstance(spec, dict):
            return LocalOptions.model_validate(spec)
        return LocalOptions.model_validate(spec, from_attributes=True)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or None
        raise SuiteError(first["msg"], key=f"finetune.{key}" if key else "finetune") from None


def measured_tokens_per_s() -> float | None:
    """This machine's training throughput, from the last finished local job (None before one)."""
    best: tuple[float, float] | None = None
    root = models_dir()
    if not root.is_dir():
        return None
    for state_path in root.glob(f"*/{STATE}"):
        try:
            state = read_json(state_path)
        except (OSError, ValueError):
            continue
        if (
            state.get("status") == "succeeded"
            and state.get("wall_s")
            and state.get("trained_tokens")
        ):
            at = state.get("finished_at", 0)
            if best is None or at > best[0]:
                best = (at, state["trained_tokens"] / state["wall_s"])
    return None if best is None else best[1]


def estimate_usd(spec: Any, train_tokens: int) -> float | None:
    """price_per_hour × the hours this machine took per token last time (None: no price, or no
    job measured yet — never a guessed rate)."""
    opts = options(spec)
    rate = measured_tokens_per_s()
    if opts.price_per_hour is None or rate is None:
        return None
    return train_tokens * opts.epochs / rate / 3600 * opts.price_per_hour


# The distributions the trainer imports (the `train` extra), and how to get them; torch's CPU
# build first, as an unpinned `torch` is a CUDA build of several GB.
TRAIN_EXTRA = ("torch", "transformers", "peft", "trl", "datasets", "gguf")
TRAIN_INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install -e '.[train]'"


def _check_train_extra() -> None:
    """A job the trainer could not start is refused before it exists (no failed job, no record)."""
    missing = [d for d in TRAIN_EXTRA if importlib.util.find_spec(d) is None]
    if missing:
        raise SuiteError(
            f"finetune: provider local needs the train extra ({', '.join(missing)} missing) — "
            f"install with: {TRAIN_INSTALL}"
        )


def _check_cuda() -> None:
    """`device: cuda` on a machine where torch sees none fails here, before a job exists."""
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise SuiteError(
            f"finetune.device: cuda, but torch {torch.__version__} ({build}) sees no CUDA "
            "device — use device: auto (CUDA where there is one, else the CPU) or cpu"
        )


def _check_qlora() -> None:
    """qlora needs bitsandbytes and a CUDA device: refused here, before a job exists."""
    import torch

    if not torch.cuda.is_available():
        raise SuiteError(
            "finetune.method: qlora loads the base in 4 bits with bitsandbytes, which needs a "
            "CUDA device, and torch sees none — use method: lora on this machine"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise SuiteError("finetune.method: qlora needs bitsandbytes — pip install bitsandbytes")


def resumable_checkpoint(inputs: str | None) -> str | None:
    """The last checkpoint of a job with these inputs that ended without a result (killed,
    failed, cancelled): a new job for the same rows and settings resumes from it."""
    if not inputs:
        return None
    from harness.finetune.local.job import CHECKPOINTS

    root = models_dir()
    found: tuple[float, str] | None = None
    for job_path in root.glob(f"*/{JOB}") if root.is_dir() else []:
        try:
            job, state = read_json(job_path), read_json(job_path.parent / STATE)
        except (OSError, ValueError):
            continue
        if (job.get("metadata") or {}).get("harness_inputs") != inputs:
            continue
        if state.get("status") not in ("failed", "cancelled"):
            continue
        checkpoints = sorted(
            (job_path.parent / CHECKPOINTS).glob("checkpoint-*"),
            key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name[-1].isdigit() else -1,
        )
        if checkpoints and (found is None or job["created_at"] > found[0]):
            found = (job["created_at"], str(checkpoints[-1].resolve()))
    return found[1] if found else None


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def wall_cap_s(opts: LocalOptions, max_cost_usd: float | None) -> float | None:
    """How long the trainer may run: `max_minutes`, and what `max_cost_usd` buys at
    `price_per_hour` — whichever is shorter (None: no cap)."""
    caps = []
    if opts.max_minutes is not None:
        caps.append(opts.max_minutes * 60)
    if max_cost_usd is not None and opts.price_per_hour:
        caps.append(max(0.0, max_cost_usd) / opts.price_per_hour * 3600)
    return min(caps) if caps else None


def submit(
    spec: Any,
    train_path: str | Path,
    val_path: str | Path | None,
    metadata: dict,
    max_cost_usd: float | None = None,
) -> str:
    """Start a detached training process for the job and return its id at once."""
    opts = options(spec)
    _check_train_extra()
    if opts.device == "cuda":
        _check_cuda()
    if opts.method == "qlora":
        _check_qlora()
    for label, path in (("train", train_path), ("validation", val_path)):
        if path is not None and not Path(path).is_file():
            raise SuiteError(f"{label} file {path} does not exist — export it first")
    job_id = new_job_id()
    folder = job_folder(job_id)
    folder.mkdir(parents=True)
    # The job trains on copies: a data file edited (or deleted) after submit cannot change what
    # this job's model learnt, and the folder keeps the exact examples.
    files = {}
    for name, path in (("train", train_path), ("val", val_path)):
        if path is not None:
            copy = folder / f"{name}.jsonl"
            shutil.copyfile(path, copy)
            files[name] = {
                "path": str(copy.resolve()),
                "source": str(Path(path).resolve()),
                "sha256": file_hash(copy),
            }
    write_json_atomic(
        folder / JOB,
        {
            "job_id": job_id,
            "options": opts.model_dump(),
            "train_path": files["train"]["path"],
            "val_path": files["val"]["path"] if "val" in files else None,
            "files": files,
            "metadata": metadata,
            "max_wall_s": wall_cap_s(opts, max_cost_usd),
            "max_cost_usd": max_cost_usd,
            "resume_from": resumable_checkpoint(metadata.get("harness_inputs")),
            "created_at": time.time(),
        },
    )
    write_json_atomic(folder / STATE, {"status": "queued", "created_at": time.time()})
    with open(folder / LOG, "ab") as log:
        launcher = shlex.split(opts.launch) if opts.launch else [sys.executable]
        proc = subprocess.Popen(
            [*launcher, "-m", "harness.finetune.local.train", str(folder.resolve())],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            # Its own session: a Ctrl-C on the watcher's terminal leaves the training running,
            # and the watcher exiting does not end it.
            start_new_session=True,
            close_fds=True,
        )
    _children[job_id] = proc
    update_state(folder, pid=proc.pid)
    return job_id


# Trainers this process started: poll() reaps them, so a finished one is not a zombie that
# os.kill(pid, 0) would take for alive.
_children: dict[str, subprocess.Popen] = {}


def _alive(job_id: str, pid: int | None, folder: Path) -> bool:
    if pid is None:
        return False
    child = _children.get(job_id)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # The pid may have been reused by another process: it must be this job's trainer.
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            return False
        return str(folder.resolve()) in text
    return True


def _state(job_id: str) -> tuple[Path, dict]:
    folder = job_folder(job_id)
    if not (folder / STATE).is_file():
        raise SuiteError(
            f"no local training job {job_id} in {folder.parent} — check the job id, or the models "
            f"folder (HARNESS_MODELS_DIR) it was started with"
        )
    return folder, read_json(folder / STATE)


def poll(job_id: str) -> JobState:
    """The job as its folder says now; events new since this process last polled it. A trainer
    that died without saying so (killed, out of memory) is recorded as failed here."""
    folder, state = _state(job_id)
    if state["status"] not in TERMINAL and not _alive(job_id, state.get("pid"), folder):
        # Read again: it may have finished between the two reads.
        state = read_json(folder / STATE)
        if state["status"] not in TERMINAL:
            log = folder / LOG
            last = read_events(folder)
            state = close_state(
                folder,
                "failed",
                # It stopped costing when it last said something.
                ended_at=last[-1]["at"] if last else None,
                error=f"the training process {state.get('pid')} ended without a result"
                + _last_words(last, log),
            )
    events = read_events(folder, after=_seen.get(job_id, 0))
    if events:
        _seen[job_id] = events[-1]["seq"]
    # One checkpoint, the final model (the shape #15's provider backends report).
    model = (
        [
            {
                "id": job_id,
                "step": state.get("step"),
                "model_id": state.get("model_id"),
                "path": str(folder / state["file"]),
            }
        ]
        if state.get("file")
        else []
    )
    return JobState(
        status=state["status"],
        model_id=state.get("model_id"),
        trained_tokens=state.get("trained_tokens"),
        cost_usd=state.get("cost_usd"),
        wall_s=state.get("wall_s"),
        events=events,
        checkpoints=model,
        error=state.get("error"),
        device=state.get("device"),
        gpu_hours=state.get("gpu_hours"),
        precision=state.get("precision"),
        served_precision=state.get("served_precision"),
        verify_matched=state.get("verify_matched"),
        verify_total=state.get("verify_total"),
    )


def _last_words(events: list[dict], log: Path) -> str:
    """What a trainer that died said last: its last event (a step's loss, not a progress bar
    the loading printed before it), and the log's last line that is not a progress bar."""
    said = events[-1].get("message") if events else None
    parts = [f"last said: {said}"] if said else []
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    # tqdm bars redraw with carriage returns and end in "it/s]" or "%|...|".
    text = [
        ln.rsplit("\r", 1)[-1].strip()
        for ln in lines
        if ln.strip() and not ("%|" in ln or "it/s]" in ln or "s/it]" in ln)
    ]
    parts += [f"last log line: {text[-1]}"] if text else []
    return f" ({'; '.join(parts)})" if parts else f" — see {log}"


def cancel(job_id: str) -> JobState:
    """Stop the trainer (SIGTERM: it ends at the next step, status cancelled; killed after
    CANCEL_GRACE_S if it does not)."""
    folder, state = _state(job_id)
    pid = state.get("pid")
    if state["status"] in TERMINAL or not _alive(job_id, pid, folder):
        return poll(job_id)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + CANCEL_GRACE_S
    while time.monotonic() < deadline and _alive(job_id, pid, folder):
        time.sleep(0.1)
    if _alive(job_id, pid, folder):
        os.killpg(pid, signal.SIGKILL)
        while _alive(job_id, pid, folder):
            time.sleep(0.05)
    if read_json(folder / STATE)["status"] not in TERMINAL:
        close_state(folder, "cancelled", error="killed: it did not stop within the grace time")
    return poll(job_id)


def restore(job_id: str, echo=print) -> bool:
    """Whether a succeeded job's trained model is on this disk; its served files (GGUF) are
    written again from the kept weights (adapter/, model/) when they were deleted — no new job.
    False when the weights are gone too (the caller trains again)."""
    from harness.calls import local_processes
    from harness.calls.local_trained import trained_model_id
    from harness.finetune.local import serving

    folder = job_folder(job_id)
    try:
        local_processes.resolve(trained_model_id(job_id))
        return True
    except SuiteError:
        pass
    weights = serving.trained_weights(folder) if (folder / JOB).is_file() else None
    if weights is None:
        return False
    _check_train_extra()
    file = serving.rematerialise(folder)
    echo(f"wrote {folder / file} again from the trained weights in {weights} (no new job)")
    return True


@backend("local", options=LocalOptions, self_hosted=True)
class LocalBackend:
    """`finetune: {provider: local, ...}`: the functions above behind #15's registry. The common
    keys (base_model, epochs, seed) come from the FinetuneSpec; the rest are LocalOptions."""

    def __init__(self, spec: FinetuneSpec):
        self.spec = spec

    @staticmethod
    def _options(spec: FinetuneSpec) -> LocalOptions:
        common = {"base_model": spec.base_model or spec.options.base_model, "seed": spec.seed}
        if spec.epochs:
            common["epochs"] = spec.epochs
        return options({**spec.options.model_dump(), **common})

    def estimate_usd(self, spec: FinetuneSpec, train_tokens: int) -> float | None:
        return estimate_usd(self._options(spec), train_tokens)

    def caps_cost(self, spec: FinetuneSpec) -> bool:
        """A job can be stopped at a cost: its wall-clock has a price."""
        return self._options(spec).price_per_hour is not None

    def submit(self, spec: FinetuneSpec, train_path, val_path, metadata, max_cost_usd=None) -> str:
        return submit(self._options(spec), train_path, val_path, metadata, max_cost_usd)

    def poll(self, job_id: str) -> JobState:
        return poll(job_id)

    def restore(self, job_id: str, echo) -> bool:
        return restore(job_id, echo)

    def cancel(self, job_id: str) -> JobState:
        return cancel(job_id)
