"""Why a path the suite names cannot be opened, in words that point at the fix."""

from __future__ import annotations

import os
from pathlib import Path

RELATIVE = "check the path (relative to the suite file)"


def not_found(path: Path, shown: str | None = None) -> str:
    """The message for a path that does not exist as a file: a symlink loop, a dangling link,
    or plainly nothing there."""
    where = shown or str(path)
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:  # Python 3.11: "Symlink loop from ..."
            return f"{where} is a symlink loop (a link that leads back to itself) — fix the link"
        except OSError as e:
            if getattr(e, "errno", None) == 40:  # ELOOP
                return (
                    f"{where} is a symlink loop (a link that leads back to itself) — fix the link"
                )
            return (
                f"{where} is a symlink to {os.readlink(path)}, which does not exist — fix the link"
            )
    return f"file not found: {where} — {RELATIVE}"
