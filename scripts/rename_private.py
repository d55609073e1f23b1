"""Make the private helpers that other modules import public, by renaming them everywhere they are used.

A `_name` is private to its module; once another module imports it, it is part of the package's
internal API and gets a public name (tests/test_layers.py keeps it that way). The renames are a
script rather than a hand edit so they can be re-applied after merging branches that still use
the old names:

    python scripts/rename_private.py            # rename, then ruff sorts the touched imports
    python scripts/rename_private.py --check    # exit 1 when an old name is still used

Idempotent: a file without the old name is left alone. A name is renamed only where it means the
helper — in the module that defines it, in a file that imports it from that module (`from M import
_x`, also multi-line and relative), as `alias._x` for an imported module alias, and as the dotted
path `M._x` (monkeypatch strings) — so another module's own `_table` or `_num` is never touched.
A file where the new name is already bound to something else stops the script (a conflict to
resolve by hand) before anything is written.
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("harness", "tests", "scripts", "benchmarks")

# (module that defines it, old name, new name)
RENAMES: list[tuple[str, str, str]] = [
    ("harness.calls.local_processes", "_cores", "usable_cores"),
    ("harness.track.store", "_probe", "probe_tracking_server"),
    ("harness.track.store", "_client", "tracking_client"),
    ("harness.track.store", "_experiment_id", "ensure_experiment"),
    ("harness.track.store", "_mlflow_env", "set_mlflow_env"),
    ("harness.track.fields", "_loads", "loads_or"),
    ("harness.track.fields", "_quote", "quote_filter_value"),
    ("harness.track.fields", "_ms", "iso_to_ms"),
    ("harness.track.fields", "_text", "json_text"),
    ("harness.track.fields", "_verdicts", "verdicts_of"),
    ("harness.track.log", "_store_errors", "store_errors"),
    ("harness.decide.sentence", "_num", "suite_number"),
    ("harness.decide.sentence", "_p", "p_phrase"),
    ("harness.report.cells", "_table", "md_table"),
    ("harness.report.cells", "_inline", "md_inline"),
    ("harness.report.cells", "_cell", "md_cell"),
    ("harness.report.cells", "_ci", "md_ci"),
    ("harness.report.cells", "_money", "md_money"),
    ("harness.report.cells", "_num", "md_num"),
    ("harness.report.stage_sections", "_judge", "judge_section"),
    ("harness.report.stage_sections", "_retrieval", "retrieval_section"),
    ("harness.report.plots", "_pyplot", "load_pyplot"),
]
# A public name imported under a private alias (`import signed as _signed`): the alias goes.
ALIASES: list[tuple[str, str]] = [("harness.stats.numbers", "signed")]


class Conflict(Exception):
    pass


def module_of(path: Path) -> str | None:
    rel = path.relative_to(ROOT)
    if rel.parts[0] != "harness":
        return None
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def absolute(node: ast.ImportFrom, here: str | None, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = (here or "").split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def bound_names(tree: ast.AST) -> set[str]:
    """Names a file defines itself (functions, classes, assignments, arguments)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
    return out


def bare(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.]){re.escape(name)}\b")


def literal_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of string literals, less the `{expressions}` of f-strings: a name there is
    text (`f"latency_p{q}_ms"` holds no `_ms`), and is never renamed."""
    starts = [0]
    for line in text.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    spans = []
    middle = getattr(tokenize, "FSTRING_MIDDLE", None)  # Python ≥ 3.12 splits f-strings
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in (tokenize.STRING, middle):
            continue
        a = starts[tok.start[0] - 1] + tok.start[1]
        b = starts[tok.end[0] - 1] + tok.end[1]
        prefix = re.match(r"[A-Za-z]*", tok.string).group(0).lower()
        if tok.type == tokenize.STRING and "f" in prefix:
            depth, i, lit_start = 0, a, a
            while i < b:
                two = text[i : i + 2]
                if depth == 0 and two in ("{{", "}}"):
                    i += 2
                    continue
                if text[i] == "{":
                    if depth == 0:
                        spans.append((lit_start, i))
                    depth += 1
                elif text[i] == "}" and depth:
                    depth -= 1
                    if depth == 0:
                        lit_start = i + 1
                i += 1
            spans.append((lit_start, b))
        else:
            spans.append((a, b))
    return spans


def sub_code(pattern: re.Pattern[str] | str, repl: str, text: str) -> str:
    """`re.sub` outside string literals (f-string expressions count as code)."""
    pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
    if not pattern.search(text):
        return text
    spans = literal_spans(text)

    def keep_literals(m: re.Match[str]) -> str:
        inside = any(a <= m.start() < b for a, b in spans)
        return m.group(0) if inside else m.expand(repl)

    return pattern.sub(keep_literals, text)


def imports_of(
    tree: ast.AST, here: str, is_package: bool
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module → names imported from it as themselves, module → local names bound to it)."""
    imported: dict[str, set[str]] = {}
    aliases: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = absolute(node, here, is_package)
            for a in node.names:
                imported.setdefault(mod, set()).add(a.name)
                aliases.setdefault(f"{mod}.{a.name}", set()).add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases.setdefault(a.name, set()).add(a.asname)
    return imported, aliases


def rename_file(path: Path) -> str | None:
    """The file's new text, or None when nothing changes."""
    text = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise Conflict(f"{path}: cannot parse ({e}) — fix it, then rerun") from None
    here = module_of(path)
    imported, aliases = imports_of(tree, here, path.name == "__init__.py")
    own = bound_names(tree)
    new_text = text
    for mod, old, new in RENAMES:
        defines = here == mod
        imports = old in imported.get(mod, set())
        renamed = sub_code(bare(old), new, new_text) if defines or imports else new_text
        if renamed != new_text:
            if imports and not defines and old in own:
                raise Conflict(f"{path}: imports {mod}.{old} and also defines its own {old}")
            if bare(new).search(new_text):
                raise Conflict(f"{path}: {new} (new name of {mod}.{old}) is already used here")
            new_text = renamed
        for alias in aliases.get(mod, set()):
            pattern = rf"(?<![\w.]){re.escape(alias)}\.{old}\b"
            new_text = sub_code(pattern, f"{alias}.{new}", new_text)
        # The dotted path is explicit enough to rename in strings too (monkeypatch targets).
        new_text = re.sub(rf"\b{re.escape(mod)}\.{old}\b", f"{mod}.{new}", new_text)
    for mod, name in ALIASES:
        line = re.compile(rf"^from {re.escape(mod)} import {name} as _{name}\n", re.M)
        if line.search(new_text):
            if bare(name).search(line.sub("", new_text)):
                raise Conflict(f"{path}: {name} is already used here; drop `as _{name}` by hand")
            new_text = line.sub(f"from {mod} import {name}\n", new_text)
            new_text = sub_code(bare(f"_{name}"), name, new_text)
    return new_text if new_text != text else None


# These spell old names on purpose: this script, and the test whose samples must stay private.
KEEP = {Path(__file__).resolve(), ROOT / "tests" / "test_layers.py"}


def files() -> list[Path]:
    return [
        p
        for folder in FOLDERS
        for p in sorted((ROOT / folder).rglob("*.py"))
        if p.resolve() not in KEEP and ".venv" not in p.parts
    ]


def main() -> int:
    check = "--check" in sys.argv
    try:
        changed = {p: t for p in files() if (t := rename_file(p)) is not None}
    except Conflict as e:
        print(f"conflict: {e}", file=sys.stderr)
        return 2
    if check:
        for p in changed:
            print(f"{p.relative_to(ROOT)}: still uses a private helper's old name")
        return 1 if changed else 0
    for p, t in changed.items():
        p.write_text(t, encoding="utf-8")
        print(f"renamed in {p.relative_to(ROOT)}")
    if changed:  # renamed imports may be out of order, and longer names may need wrapping
        paths = [str(p) for p in changed]
        subprocess.run(["ruff", "check", "--select", "I", "--fix", "--quiet", *paths], cwd=ROOT)
        subprocess.run(["ruff", "format", "--quiet", *paths], cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
