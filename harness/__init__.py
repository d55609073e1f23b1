"""harness: decide between prompt engineering, RAG and fine-tuning with a pre-registered hypothesis."""

import os

# litellm fetches its price list from the internet at import unless told otherwise; the bundled
# copy is what every run must use (reproducible costs, no network at import).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"
