"""Rebuild test.csv / train.csv: 10 banking intents of CLINC150 (clinc/oos-eval, data_full.json).

    python data/clinc150-banking/make_subset.py /path/to/oos-eval/data
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

# The first ten intents of the banking domain in domains.json, in its order.
INTENTS = [
    "freeze_account",
    "routing",
    "pin_change",
    "bill_due",
    "pay_bill",
    "account_blocked",
    "interest_rate",
    "min_payment",
    "bill_balance",
    "transfer",
]


def main(src: str) -> None:
    data = json.loads((Path(src) / "data_full.json").read_text(encoding="utf-8"))
    here = Path(__file__).parent
    for split in ("test", "train"):
        rows = [(t, i) for t, i in data[split] if i in INTENTS]
        with open(here / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "intent"])
            w.writerows(rows)
        print(split, len(rows))


if __name__ == "__main__":
    main(sys.argv[1])
