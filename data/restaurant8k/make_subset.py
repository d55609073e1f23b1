"""Rebuild test.jsonl and train.jsonl from Restaurant-8k (PolyAI span_extraction, CC-BY-4.0).

    python data/restaurant8k/make_subset.py PATH/TO/span_extraction/restaurant8k

Each row: text, asked (the slots the assistant had just requested), target {slot: substring of
text given by the labelled value span; startIndex is omitted in the source when it is 0}.
test.jsonl: 100 messages (seed 8) with at least one slot and no duplicate of a train message
after lower-casing and removing punctuation; train.jsonl: every row of train_5.json.
"""

import json
import random
import re
import sys
from pathlib import Path


def convert(row: dict) -> dict:
    text = row["userInput"]["text"]
    target = {}
    for label in row.get("labels", []):
        span = label["valueSpan"]
        target[label["slot"]] = text[span.get("startIndex", 0) : span["endIndex"]]
    asked = ", ".join((row.get("context") or {}).get("requestedSlots", []))
    return {"text": text, "asked": asked, "target": target}


def norm(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.lower()).strip()


def main(src: Path, out: Path) -> None:
    train = [convert(r) for r in json.loads((src / "train_5.json").read_text())]
    seen = {norm(r["text"]) for r in train}
    test = [convert(r) for r in json.loads((src / "test.json").read_text())]
    labelled = [i for i, r in enumerate(test) if r["target"] and norm(r["text"]) not in seen]
    keep = sorted(random.Random(8).sample(labelled, 100))
    for name, rows in (("test.jsonl", [test[i] for i in keep]), ("train.jsonl", train)):
        with open(out / name, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).parent)
