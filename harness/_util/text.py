"""Text comparison forms, one per question asked of text.

- `fold`: are two texts the same example? (train/test duplicates in `harness check`, the
  few-shot rule "never show the asked example", the export's test-set filter). NFKC,
  case-folded, punctuation dropped, whitespace collapsed.
- `normalize_text` / `normalize_label`: is an answer the expected one? Punctuation inside an
  answer matters there ("3.5" is not "35"), so only edge quotes and trailing punctuation go.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

_PUNCT = re.compile(r"[^\w\s]")
QUOTES = "\"'`“”‘’«»"
TRAILING = ".,;:!?。"
_SEPARATORS = re.compile(r"[\s_\-]+")
_SPACES = re.compile(r"\s+")


def fold(text: Any) -> str:
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


def inputs_text(inputs: Mapping[str, Any], fields: Sequence[str] | None = None) -> str:
    """The text a model sees from an example's inputs: the field values, one per line."""
    keys = list(inputs) if fields is None else list(fields)
    return "\n".join("" if inputs.get(f) is None else str(inputs.get(f)) for f in keys)


def normalize_text(text: Any) -> str:
    """Comparison form of free text: NFKC, case-folded, whitespace collapsed, edge quotes and
    trailing punctuation removed (a model's "Yes." and a reference's "yes" are the same answer)."""
    s = unicodedata.normalize("NFKC", str(text)).casefold()
    s = _SPACES.sub(" ", s).strip()
    prev = None
    while s != prev:
        prev = s
        s = s.strip().strip(QUOTES).rstrip(TRAILING).strip()
    return s


def normalize_label(text: Any) -> str:
    """Label form: free-text normalisation plus spaces, '-' and '_' treated alike, so
    "Card arrival" and "card-arrival" both find the label card_arrival."""
    return _SEPARATORS.sub("_", normalize_text(text)).strip("_")


# Terminal control sequences: OSC (ESC ] … BEL or ST: window titles, OSC 52 clipboard writes,
# hyperlinks), DCS/SOS/PM/APC strings, CSI (ESC [ …: colours, cursor moves), other two-byte
# escapes, their 8-bit C1 forms, and every other C0/C1 control but tab and newline.
_CONTROLS = re.compile(
    r"(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*(?:\x1b\\|\x9c)?"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|\x1b[ -/]*[0-~]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def strip_controls(text: Any) -> str:
    """Text from a provider, a data file or a model made safe to print: no terminal control
    sequence survives (an OSC 52 in an error message would write the user's clipboard)."""
    return _CONTROLS.sub("", str(text))
