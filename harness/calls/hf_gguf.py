"""A transformers LLaMA-architecture model as a GGUF file llama.cpp serves, at F32.

`local/hf:<directory or Hugging Face id>` is such a model served by the local provider: the
GGUF is written once from the transformers weights (cached in `<models dir>/bases/`, keyed by
the model's files) at F32, which holds bf16/fp16/f32 trained weights exactly — nothing is
rounded to a quantised type. A LoRA adapter trained on that base is applied on top of the same
file (harness.calls.local_trained), so the prompt variants and the trained variant run the same
base weights at the same precision.

The tokenizer goes in as llama.cpp's "gpt2" byte-level BPE (tokens and merges of
tokenizer.json, gguf's own vocab readers); its pre-tokenizer is copied from the shipped SmolLM2
GGUF when the vocabulary is SmolLM2's, else llama.cpp's "default" (the trainer's served-answer
check then says whether llama.cpp tokenizes as transformers does). Other architectures and
SentencePiece tokenizers are refused with the way out (vLLM, or llama.cpp's own converter).

torch, transformers and gguf come from the `train` extra, imported lazily.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from harness.errors import SuiteError

HF_PREFIX = "hf:"
BASES_DIR = "bases"
LLAMA_TYPES = ("llama",)


def hf_source(model_id: str) -> str:
    """`local/hf:/path/to/model` -> `/path/to/model` (the id or directory transformers loads)."""
    return model_id.split("/", 1)[1].removeprefix(HF_PREFIX)


def _fingerprint(source: str) -> str:
    """Changes when the model's files do (a directory), else the id's own text."""
    path = Path(source)
    h = hashlib.sha256(str(path.resolve() if path.exists() else source).encode())
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


# Bumped when the writer changes what a base's GGUF holds: a base converted by an older writer
# (v1 typed <|im_start|> as plain text) is converted again rather than reused.
WRITER_VERSION = 2


def base_gguf_path(source: str, models_root: Path) -> Path:
    name = Path(source.rstrip("/")).name or "model"
    return models_root / BASES_DIR / f"{name}-{_fingerprint(source)}-f32-v{WRITER_VERSION}.gguf"


def check_convertible(config) -> None:
    if getattr(config, "model_type", None) not in LLAMA_TYPES:
        raise SuiteError(
            f"llama.cpp serving here converts LLaMA-architecture models only, not "
            f"{getattr(config, 'model_type', '?')} — serve it with vLLM on a GPU "
            "(finetune.serve: vllm), or convert it with llama.cpp's convert_hf_to_gguf.py"
        )


def load_hf(source: str):
    """(tokenizer, f32 model) of a local directory or a Hugging Face id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except OSError as e:
        raise SuiteError(
            f"{source}: transformers cannot load a causal LM from it ({e}) — give a model "
            "directory or a Hugging Face id in the local cache"
        ) from None
    return tok, model


def ensure_base_gguf(source: str, models_root: Path) -> Path:
    """The F32 GGUF of `source`, written on first use (atomically: a killed write leaves none)."""
    path = base_gguf_path(source, models_root)
    if path.is_file():
        return path
    tok, model = load_hf(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_llama_gguf(tmp, model, tok)
    os.replace(tmp, path)
    return path


def permute(w, n_head: int):
    # llama.cpp's converter's q/k row order for its rotary layout (LlamaModel.permute).
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _tokenizer(writer, tok, work: Path) -> None:
    import gguf

    tok.save_pretrained(str(work))
    try:
        vocab = gguf.vocab.BpeVocab(work)
    except FileNotFoundError:
        raise SuiteError(
            f"{tok.name_or_path}: not a byte-level BPE tokenizer — llama.cpp serving here "
            "converts those only; serve with vLLM (finetune.serve: vllm) or convert the model "
            "with llama.cpp's convert_hf_to_gguf.py"
        ) from None
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    # Added tokens that are also in the BPE vocabulary (SmolLM2's <|im_start|>, <|im_end|>) come
    # out NORMAL: llama.cpp would then read "<|im_start|>" in a chat prompt as plain text, and the
    # served model would see another prompt than the one it was trained on. Typed as the
    # tokenizer says, as llama.cpp's own converter does: special → CONTROL, else USER_DEFINED.
    for i, added in tok.added_tokens_decoder.items():
        if i < len(types):
            types[i] = gguf.TokenType.CONTROL if added.special else gguf.TokenType.USER_DEFINED
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(tokens))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(work, load_merges=True, n_vocab=len(tokens))
    if tok.chat_template and special.chat_template is None:
        special.chat_template = tok.chat_template
    special.add_to_gguf(writer, quiet=True)


def _pre_tokenizer(tokens: list) -> str:
    """SmolLM2's pre-tokenizer when this is SmolLM2's vocabulary, else llama.cpp's default."""
    try:
        import gguf

        from harness.calls.local_processes import model_path

        reader = gguf.GGUFReader(str(model_path()))
        shipped = reader.fields["tokenizer.ggml.tokens"]
        if len(shipped.data) == len(tokens) and all(
            bytes(shipped.parts[i]) == (t if isinstance(t, bytes) else str(t).encode())
            for i, t in zip(shipped.data[:64], tokens[:64], strict=False)
        ):
            return str(reader.fields["tokenizer.ggml.pre"].contents())
    except (SuiteError, KeyError, ImportError, OSError):
        pass
    return "default"


def write_llama_gguf(path: Path, model, tok) -> int:
    """Write a transformers LLaMA model (and its tokenizer, chat template) as an F32 GGUF;
    returns the tensors written."""
    import tempfile

    import gguf

    config = model.config
    check_convertible(config)
    n_layers, n_head = config.num_hidden_layers, config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_head
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(Path(str(tok.name_or_path)).name or "model")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    theta = getattr(config, "rope_theta", None) or (
        (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    )
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    with tempfile.TemporaryDirectory() as work:
        _tokenizer(writer, tok, Path(work))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    n = 0
    for hf_name, p in model.state_dict().items():
        if "rotary_emb" in hf_name:
            continue
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reuses token_embd
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise SuiteError(f"{hf_name}: no GGUF tensor for it — not a plain LLaMA model")
        w = p.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            w = permute(w, n_head)
        elif hf_name.endswith("k_proj.weight"):
            w = permute(w, n_kv)
        writer.add_tensor(name, w.astype("float32"))
        n += 1
    close_gguf(writer)
    return n


def close_gguf(writer) -> None:
    """Write a GGUFWriter's header, metadata and tensors, and close the file."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
