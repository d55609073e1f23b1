"""Self-hosted fine-tuning of the local model (the `local` backend of `harness finetune`).

backend (the protocol: estimate_usd / submit / poll / cancel), job (the job folder, options,
JobState), train (the detached training process), gguf (trained weights as llama.cpp GGUF).
torch, transformers, peft and gguf come from the `train` extra and are imported lazily.
"""
