"""A transformers LLaMA written as a GGUF (harness.calls.hf_gguf) is the model llama.cpp serves:
the same tokens for a chat prompt, the same next-token logits."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A 2-layer LLaMA with random weights and SmolLM2's tokenizer, and its F32 GGUF."""
    pytest.importorskip("torch")
    pytest.importorskip("llama_cpp")
    from tiny_llama import tiny_llama

    from harness.calls.hf_gguf import write_llama_gguf

    tok, model = tiny_llama()
    path = tmp_path_factory.mktemp("gguf") / "model.gguf"
    write_llama_gguf(path, model, tok)
    return model, tok, path


def test_a_chat_prompt_is_tokenized_as_the_trainer_tokenized_it(written):
    # llama.cpp reads the prompt's text: "<|im_start|>" must be its one control token there, as
    # in training, not eleven characters (the served model then answered another prompt).
    import gguf
    from llama_cpp import Llama

    model, tok, path = written
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "When will my card arrive?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    llm = Llama(str(path), vocab_only=True, verbose=False)
    served = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    assert served == tok(prompt, add_special_tokens=False)["input_ids"]
    types = gguf.GGUFReader(str(path)).fields["tokenizer.ggml.token_type"]
    start = tok.convert_tokens_to_ids("<|im_start|>")
    assert int(types.parts[types.data[start]][0]) == gguf.TokenType.CONTROL


def test_the_served_logits_are_the_trained_models(written):
    import numpy as np
    import torch
    from llama_cpp import Llama

    model, tok, path = written
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "I lost my card"}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        hf = model(torch.tensor([ids])).logits[0].numpy()
    llm = Llama(str(path), logits_all=True, n_ctx=256, n_threads=1, verbose=False)
    llm.eval(llm.tokenize(prompt.encode(), add_bos=False, special=True))
    served = np.array(llm.scores[: len(ids)])
    assert np.abs(hf - served).max() < 1e-2
    assert (hf.argmax(1) == served.argmax(1)).all()
