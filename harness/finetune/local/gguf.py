"""Trained weights as GGUF files that the local provider's llama.cpp loads.

Two shapes, one per method:
- `lora`: a GGUF LoRA adapter (general.type=adapter). llama.cpp applies it on top of the
  unchanged base GGUF (`Llama(lora_path=...)`), so the fine-tuned model runs the very Q4_1 base
  weights the zero-shot and few-shot variants run, plus the trained low-rank update in f32 —
  base and fine-tuned compare like for like, and the adapter is a few MB instead of a model.
  Merging the update into the weights and re-quantising to Q4_1 would round most of it away (a
  LoRA update is small against a 4-bit step); keeping merged weights in f16 would make the
  fine-tuned variant the only one served at higher precision.
- `full`: every weight trained, so a whole GGUF: the base file's metadata and tokenizer, every
  tensor its trained value at F32 — the precision it was trained in. Written at the base file's
  Q4_1 types, a full update of a few steps is mostly smaller than a 4-bit step and rounds away
  (a full fine-tune that "trained" to low loss served at 10% accuracy). The base it started
  from is the Q4_1 file dequantised, exact in F32, so the prompt variants run the same base.

transformers un-permutes LLaMA's q/k rows when it loads a GGUF (llama.cpp's converter permutes
them for its rotary layout); writing back applies the converter's permutation again. For an
adapter only lora_b carries the output rows: permute(B) @ A == permute(B @ A).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.calls.hf_gguf import close_gguf
from harness.calls.hf_gguf import permute as hf_permute

# HF module names of the linear layers LoRA may target, and their GGUF tensor names.
LLAMA_LINEAR = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
ARCH = "llama"


def permute(w, n_head: int, n_head_kv: int | None = None):
    """llama.cpp's converter's q/k row permutation (convert_hf_to_gguf.LlamaModel.permute)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return hf_permute(w, n_head)


def _rows_permuted(hf_name: str, w, config):
    if hf_name.endswith("q_proj"):
        return permute(w, config.num_attention_heads, config.num_attention_heads)
    if hf_name.endswith("k_proj"):
        return permute(w, config.num_attention_heads, config.num_key_value_heads)
    return w


def gguf_name(hf_name: str, n_layers: int) -> str:
    """`model.layers.3.self_attn.q_proj(.weight)` -> `blk.3.attn_q(.weight)`."""
    import gguf

    mapped = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers).get_name(
        hf_name, try_suffixes=(".weight", ".bias")
    )
    if mapped is None:
        raise ValueError(f"no GGUF name for {hf_name}")
    return mapped


def write_lora_adapter(path: Path, model, alpha: float) -> int:
    """Write a peft LoRA model's adapter as a llama.cpp GGUF adapter; returns tensors written.

    lora_a is stored (rank, in) and lora_b (out, rank), numpy order: llama.cpp checks a's ne[0]
    against the weight's input size and b's ne[1] against its output size, and scales by
    adapter.lora.alpha / rank exactly as peft does (no rsLoRA).
    """
    import gguf

    config = model.base_model.model.config
    n_layers = config.num_hidden_layers
    writer = gguf.GGUFWriter(str(path), ARCH)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    n = 0
    for name, module in model.named_modules():
        if not hasattr(module, "lora_A") or "default" not in module.lora_A:
            continue
        hf_name = name.removeprefix("base_model.model.")
        a = module.lora_A["default"].weight.detach().float().cpu().numpy()
        b = module.lora_B["default"].weight.detach().float().cpu().numpy()
        base = gguf_name(hf_name, n_layers)
        writer.add_tensor(f"{base}.weight.lora_a", a)
        writer.add_tensor(f"{base}.weight.lora_b", _rows_permuted(hf_name, b, config).copy())
        n += 1
    close_gguf(writer)
    return n


def _base_types(base_gguf: Path) -> tuple[Any, dict[str, Any]]:
    import gguf

    reader = gguf.GGUFReader(str(base_gguf))
    return reader, {t.name: t.tensor_type for t in reader.tensors}


def write_full(path: Path, model, base_gguf: Path) -> int:
    """A whole GGUF: the base file's metadata (tokenizer, chat template, hyperparameters) with
    every tensor replaced by the trained one at F32; returns tensors written."""
    import gguf

    reader, types = _base_types(base_gguf)
    config = model.config
    n_layers = config.num_hidden_layers
    trained = {}
    for hf_name, p in model.named_parameters():
        name = gguf_name(hf_name, n_layers)
        if name in types:  # lm_head is tied to token_embd: no tensor of its own
            w = p.detach().float().cpu().numpy()
            trained[name] = _rows_permuted(hf_name.removesuffix(".weight"), w, config)
    missing = set(types) - set(trained)
    if missing:
        raise ValueError(f"the trained model lacks base tensors: {sorted(missing)[:5]}")

    writer = gguf.GGUFWriter(str(path), ARCH)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
            continue  # the writer writes these itself
        if field.name == gguf.Keys.General.FILE_TYPE:
            writer.add_file_type(gguf.LlamaFileType.ALL_F32)
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, trained[tensor.name].astype("float32"))
    close_gguf(writer)
    return len(reader.tensors)
