"""Fine-tuning jobs: backends (`BACKENDS`), the job store and the trained variant's model id.

The command that launches and watches a job is harness.run.finetune (it exports and distils
through layers above this one); `harness run` and `harness ledger` read the job store here.
"""

from harness.finetune import openai_backend  # noqa: F401  (registers the built-in backends)
from harness.finetune.local import backend as local_backend  # noqa: F401
