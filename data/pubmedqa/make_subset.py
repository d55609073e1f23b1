"""Rebuild this folder's subset from the PubMedQA repository files (provenance; not needed at run time).

    python data/pubmedqa/make_subset.py PATH/TO/pubmedqa/data

test.jsonl: every 5th PMID of test_ground_truth.json (100 of 500; the file is grouped by answer, so
this keeps the yes/no/maybe proportions) with question, answer
(yes/no/maybe) and pmid. passages.jsonl: one row per abstract (id = PMID, text = the abstract's
labelled passages joined): those 100 plus the first 200 PMIDs of ori_pqal.json that are not in the
official test set, as distractors, so retrieval has to find the right abstract among 300.
"""

import json
import sys
from pathlib import Path

N_TEST, N_DISTRACTORS = 100, 200


def main(src: Path, out: Path) -> None:
    pqal = json.loads((src / "ori_pqal.json").read_text(encoding="utf-8"))
    truth = json.loads((src / "test_ground_truth.json").read_text(encoding="utf-8"))
    test_ids = list(truth)[:: len(truth) // N_TEST][:N_TEST]
    others = [pmid for pmid in pqal if pmid not in truth][:N_DISTRACTORS]
    with open(out / "test.jsonl", "w", encoding="utf-8") as f:
        for pmid in sorted(test_ids):  # by PMID: answers mixed, so --limit N gets all three
            row = {"pmid": pmid, "question": pqal[pmid]["QUESTION"], "answer": truth[pmid]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(out / "passages.jsonl", "w", encoding="utf-8") as f:
        for pmid in sorted(test_ids + others):
            item = pqal[pmid]
            text = "\n".join(
                f"{label}: {ctx}"
                for label, ctx in zip(item["LABELS"], item["CONTEXTS"], strict=True)
            )
            f.write(json.dumps({"id": pmid, "text": text}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).parent)
