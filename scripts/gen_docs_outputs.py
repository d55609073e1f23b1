"""Rerun the commands whose output the docs show, and rewrite those blocks with what they print.

A page marks a block with the command that prints it:

    <!-- output: harness check suites/quickstart-finetune.yaml -->
    ```console ... ```
    <!-- /output -->

`--slow` on the marker (`<!-- output --slow: harness run suites/quickstart-finetune.yaml -->`)
marks a command that calls the local model or trains it (minutes of CPU): it is rerun only with
`--slow`. The slow ones run from the repository root, as a reader runs them (regenerate them on a
fresh checkout: they make the runs the later blocks read). The cheap ones run in a scratch copy
of the checkout without its runs/, mlruns/ and models/, so what your own runs left there (a
registered protocol that `harness check` would report) does not change them. `<latest>` in a path
stands for the newest entry of its folder (a run id, which sorts by time), so
`harness diagnose runs/quickstart-finetune/<latest>` diagnoses the run an earlier block made; the
block shows the id it resolved to, as a reader would type it.

    PYTHONPATH=$PWD python scripts/gen_docs_outputs.py            # the cheap ones
    PYTHONPATH=$PWD python scripts/gen_docs_outputs.py --slow     # and the local-model ones
    PYTHONPATH=$PWD python scripts/gen_docs_outputs.py --check    # exit 1 when a cheap one differs
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(
    r"<!-- output(?P<slow> --slow)?: (?P<cmd>.+?) -->\n(?P<body>.*?)<!-- /output -->", re.S
)


def resolve(cmd: str) -> str:
    """`<latest>` → the newest entry of the folder before it (run ids start with their time)."""

    def newest(m: re.Match) -> str:
        folder = ROOT / m["folder"]
        runs = folder.iterdir() if folder.is_dir() else ()
        entries = sorted(p.name for p in runs if p.is_dir() and p.name[:1].isdigit())
        if not entries:
            raise SystemExit(f"{cmd}: {m['folder']} is empty — an earlier block should create it")
        return f"{m['folder']}/{entries[-1]}"

    return re.sub(r"(?P<folder>[\w./-]+)/<latest>", newest, cmd)


# What a reader's own runs leave in the checkout: kept out of the cheap commands' scratch copy.
STATE = {"runs", "mlruns", "models", ".git"}


def scratch_copy(into: Path) -> Path:
    """The checkout as links, without its run state."""
    for entry in ROOT.iterdir():
        if entry.name not in STATE:
            (into / entry.name).symlink_to(entry)
    return into


def run(cmd: str, cwd: Path = ROOT) -> str:
    cmd = resolve(cmd)
    args = shlex.split(cmd)
    argv = [sys.executable, "-m", "harness.cli", *args[1:]] if args[0] == "harness" else args
    # As at a terminal: no plain progress lines (a terminal's bars are gone when a command ends).
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "120",
        "NO_COLOR": "1",
        "HARNESS_PROGRESS_EVERY_S": "0",
    }
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    text = (proc.stdout + proc.stderr).rstrip()
    for where in {cwd, ROOT}:
        text = text.replace(f"{where}/", "")  # as run from the checkout
    return f"```console\n$ {cmd}\n{text}\n(exit {proc.returncode})\n```\n"


def main() -> int:
    slow, check = "--slow" in sys.argv, "--check" in sys.argv
    differs: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = scratch_copy(Path(tmp))
        for page in sorted(DOCS.rglob("*.md")):
            rewrite(page, scratch, slow, check, differs)
    if check and differs:
        print("outputs differ — rerun scripts/gen_docs_outputs.py:", *differs, sep="\n  ")
        return 1
    return 0


def rewrite(page: Path, scratch: Path, slow: bool, check: bool, differs: list[str]) -> None:
    """Rerun `page`'s blocks (the slow ones only with --slow); write it unless --check."""
    text = page.read_text(encoding="utf-8")

    def replace(m: re.Match) -> str:
        if m["slow"] and not slow:
            return m.group(0)
        body = run(m["cmd"], ROOT if m["slow"] else scratch)
        if body != m["body"]:
            differs.append(f"{page.relative_to(ROOT)}: {m['cmd']}")
        return f"<!-- output{m['slow'] or ''}: {m['cmd']} -->\n{body}<!-- /output -->"

    new = BLOCK.sub(replace, text)
    if new != text and not check:
        page.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
