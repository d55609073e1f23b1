"""Reading the suite YAML with the line and column of every key, for errors that point at it."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from harness._util.paths import RELATIVE, not_found
from harness.errors import SuiteError


def format_key(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _positions(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, tuple[int, int]]:
    """Map each key path to the 1-based (line, column) where its value (or key) starts."""
    out = {prefix: (node.start_mark.line + 1, node.start_mark.column + 1)}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            sub = prefix + (key,)
            out.update(_positions(v, sub))
            # Point unknown-key errors at the key itself, not its value.
            out[sub + ("__key__",)] = (k.start_mark.line + 1, k.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_positions(item, prefix + (i,)))
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


QUOTE_TEMPLATE = 'a template starting with {{ must be quoted — user: "{{ text }}"'
# Nodes a suite may expand to once aliases are followed: a real suite has a few thousand; a
# 1 KB "billion laughs" of nested aliases would otherwise cost minutes of CPU before any message.
MAX_NODES = 100_000
# A suite is a few levels deep; thousands of nested brackets only exhaust Python's stack.
MAX_DEPTH = 64
# No setting of a suite needs an integer this large (a 400-digit one overflows every float).
MAX_INT = 2**63


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for k, _ in node.value:
        key = loader.construct_object(k, deep=deep)
        if not isinstance(key, Hashable):
            # `user: {{ text }}` unquoted: YAML reads a mapping whose key is a mapping.
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"found a mapping where text was expected; {QUOTE_TEMPLATE}",
                k.start_mark,
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", k.start_mark
            )
        seen[key] = k.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> tuple[Any, dict[tuple, tuple[int, int]]]:
    if not path.exists():
        raise SuiteError("suite " + not_found(path).replace(f" — {RELATIVE}", " — check the path"))
    if path.is_dir():
        raise SuiteError(f"{path} is a directory — pass the suite's .yaml file")
    if not path.is_file():
        raise SuiteError(
            f"{path} is not a regular file (a device or pipe) — pass the suite's .yaml file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise SuiteError(
            f"not UTF-8 (byte {e.start}) — save the file as UTF-8", file=str(path), line=line
        ) from None
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        if node is not None and _expanded_size(node) > MAX_NODES:
            raise SuiteError(
                f"the YAML expands to more than {MAX_NODES:,} values through aliases (*name) — "
                "a suite needs no nested aliases; write the values out",
                file=str(path),
            )
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except RecursionError:
        raise SuiteError(
            f"the YAML is nested too deeply — a suite needs at most {MAX_DEPTH} levels",
            file=str(path),
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        msg = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
        if problem.startswith("duplicate key"):
            fix = " — keep one of them"
        elif QUOTE_TEMPLATE in problem:
            fix = ""
        else:
            fix = " — fix the syntax (indentation, quotes, colons)"
        raise SuiteError(
            msg + fix,
            file=str(path),
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from None
    if data is None:
        raise SuiteError("the suite is empty — start from suites/quickstart.yaml", file=str(path))
    if not isinstance(data, dict):
        raise SuiteError(
            "a suite is a YAML mapping (name:, task:, data:, ...)", file=str(path), line=1
        )
    _check_values(node, path)
    return data, _positions(node) if node is not None else {}


def _check_values(root: yaml.Node | None, path: Path) -> None:
    """Depth and integer size, walked without recursion (the checks exist for inputs that
    would exhaust it)."""
    stack = [(root, 1)] if root is not None else []
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        line = node.start_mark.line + 1
        if depth > MAX_DEPTH:
            raise SuiteError(
                f"the YAML is nested more than {MAX_DEPTH} levels deep — a suite needs a few",
                file=str(path),
                line=line,
            )
        if isinstance(node, yaml.MappingNode):
            stack += [(n, depth + 1) for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            stack += [(n, depth + 1) for n in node.value]
        elif node.tag == "tag:yaml.org,2002:int":
            digits = node.value.lstrip("+-").replace("_", "")
            if len(digits) > 19 or (digits.isdigit() and int(digits) >= MAX_INT):
                raise SuiteError(
                    f"the integer {node.value[:24]}{'…' if len(node.value) > 24 else ''} is too "
                    "large for any setting — write a realistic number",
                    file=str(path),
                    line=line,
                    column=node.start_mark.column + 1,
                )


def _expanded_size(root: yaml.Node) -> int:
    """Values the document holds with every alias followed, counted without following them
    (each distinct node once, memoised), so an alias bomb is measured in linear time."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            kids = list(node.value)
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            sizes[id(node)] = min(MAX_NODES + 1, 1 + sum(sizes[id(k)] for k in kids))
        else:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in sizes)
    return sizes[id(root)]


def locate(locations, key) -> tuple[int | None, int | None]:
    """(line, column) of `key`, else of its nearest parent that has one."""
    k = tuple(key)
    while k and k not in locations:
        k = k[:-1]
    return locations.get(k, (None, None))
