"""harness: decide between prompt engineering, RAG and fine-tuning with a pre-registered hypothesis."""

__version__ = "0.1.0"
