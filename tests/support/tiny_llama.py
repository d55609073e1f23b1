"""A 2-layer LLaMA with random weights and SmolLM2's tokenizer: a transformers model that trains,
converts and serves in seconds of CPU (tests of `local/hf:` bases and the GGUF writer)."""

from __future__ import annotations

from harness.calls import local_processes


def tiny_llama():
    """(tokenizer, model): seeded, so every test gets the same weights."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf_file = local_processes.model_path()
    tok = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    return tok, LlamaForCausalLM(config).eval()
