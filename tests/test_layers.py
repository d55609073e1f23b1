"""A `_name` stays inside its module: harness/ never imports another module's private helper.

A helper other modules need gets a public name (scripts/rename_private.py renames the ones that
were shared, and can be rerun after a merge brings old uses back)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str, module: str, is_package: bool = False) -> list[str]:
    """Where `source` (the text of harness module `module`) reaches another harness module's
    `_name`: `from M import _x` (absolute or relative, at any depth) or `M_alias._x`."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name → the harness module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([node.module] if node.module else []))
            if base.split(".")[0] != "harness":
                continue
            for a in node.names:
                if _private(a.name):
                    found.append(f"line {node.lineno}: from {base} import {a.name}")
                modules[a.asname or a.name] = f"{base}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "harness":
                    # `import harness.x` binds `harness`; `import harness.x as y` binds y to harness.x
                    modules[a.asname or "harness"] = a.name if a.asname else "harness"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner, parts = node.value, []
            while isinstance(owner, ast.Attribute):
                parts.append(owner.attr)
                owner = owner.value
            if isinstance(owner, ast.Name) and owner.id in modules:
                path = ".".join([modules[owner.id], *reversed(parts)])
                found.append(f"line {node.lineno}: {path}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_helper():
    offences = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        for use in private_uses(path.read_text(encoding="utf-8"), module, is_package):
            offences.append(f"{path.relative_to(ROOT)}: {use}")
    assert offences == [], (
        "private helpers used across modules — give them a public name (add them to "
        "scripts/rename_private.py and run it):\n" + "\n".join(offences)
    )


def test_the_check_sees_each_way_of_reaching_a_private_helper():
    source = (
        "from harness.report.cells import md_table, _inline\n"
        "from .fields import (\n    loads_or,\n    _quote,\n)\n"
        "from harness.track import store\n"
        "import harness.report.plots\n"
        "import os\n"
        "store._client('x'); store.tracking_client('x'); os._exit(0)\n"
        "harness.report.plots._pyplot()\n"
        "def f():\n    from harness.decide.sentence import _num\n"
    )
    assert private_uses(source, "harness.track.log") == [
        "line 1: from harness.report.cells import _inline",
        "line 2: from harness.track.fields import _quote",
        "line 12: from harness.decide.sentence import _num",
        "line 9: harness.track.store._client",
        "line 10: harness.report.plots._pyplot",
    ]


def test_the_rename_script_has_nothing_left_to_rename():
    # Rerun after a merge: a branch written against the old names brings them back.
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rename_private.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_rename_script_renames_code_never_text():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "rename_private", ROOT / "scripts" / "rename_private.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    source = (
        'x = _ms(a) + v[f"latency_p{q}_ms"] + f"{_ms(b)!r} {{_ms}}"  # _ms here is code\n'
        'y = "_ms"\n'
    )
    assert script.sub_code(script.bare("_ms"), "iso_to_ms", source) == (
        'x = iso_to_ms(a) + v[f"latency_p{q}_ms"] + f"{iso_to_ms(b)!r} {{_ms}}"  '
        "# iso_to_ms here is code\n"
        'y = "_ms"\n'
    )
