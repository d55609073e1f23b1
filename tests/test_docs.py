"""The docs cover the code: every command, option, suite key, metric and exit code is documented,
every link resolves, the generated pages and shown outputs are current, and the site builds."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import write_suite

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
PAGES = sorted(DOCS.rglob("*.md"))
# The pages a reader learns from (the reference is generated, so it cannot be the only mention).
GUIDES = [p for p in PAGES if REFERENCE not in p.parents and p.name != "DESIGN.md"]


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _commands():
    """(path, command) for every command and subcommand (`ledger show` is "ledger show")."""
    from harness.cli import COMMANDS, main

    out = []

    def walk(path, command):
        out.append((path, command))
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=path)
            for sub in command.list_commands(ctx):
                walk(f"{path} {sub}", command.get_command(ctx, sub))

    ctx = click.Context(main, info_name="harness")
    for name in sorted(COMMANDS):
        walk(name, main.get_command(ctx, name))
    return out


def test_the_reference_pages_are_generated_from_the_current_code():
    result = _script("gen_reference.py", "--check")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name,command", _commands())
def test_every_command_and_option_is_documented(name, command):
    reference = (REFERENCE / "commands.md").read_text(encoding="utf-8")
    # The command's own section: an option another command documents does not count.
    section = re.search(
        rf"^#+ `harness {re.escape(name)}`\n(.*?)(?=^#+ |\Z)", reference, re.S | re.M
    )
    assert section, f"no section for `harness {name}` in docs/reference/commands.md"
    rows = re.findall(r"^\| `([^`]*)` \| (.*) \|$", section.group(1), re.M)
    undocumented = [
        opt
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden
        for opt in p.opts
        if opt not in ("-h", "--help")
        and not any(
            re.search(rf"(^|[ ,/]){re.escape(opt)}([ ,/=]|$)", f) and m.strip() for f, m in rows
        )
    ]
    assert not undocumented, (
        f"harness {name}: {undocumented} not described in docs/reference/commands.md "
        "(give the option a help= text, then run scripts/gen_reference.py)"
    )
    # ... and a guide page tells a reader when to use it.
    top = name.split()[0]
    assert any(f"harness {top}" in p.read_text(encoding="utf-8") for p in GUIDES), name


def _schema_keys(schema: dict) -> set[tuple[str, str]]:
    """(section of docs/reference/suite.md, key) for every key the schema allows."""
    keys = {("Top level", key) for key in schema.get("properties", {})}
    for name, obj in schema["$defs"].items():
        keys |= {(name, key) for key in obj.get("properties", {})}
    return keys


def test_every_suite_key_is_documented():
    schema = json.loads((ROOT / "harness/suite/suite.schema.json").read_text())
    reference = (REFERENCE / "suite.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", reference, re.S | re.M))
    missing = [
        f"{where}.{key}"
        for where, key in _schema_keys(schema)
        if f"| `{key}` |" not in sections.get(where, "")
    ]
    assert not missing, f"not in docs/reference/suite.md: {sorted(missing)}"
    # A key the schema does not describe is explained in prose: a guide page or DESIGN.
    prose = "\n".join(p.read_text(encoding="utf-8") for p in GUIDES + [DOCS / "DESIGN.md"])
    unexplained = [
        f"{where}.{key}"
        for where, key in _schema_keys(schema)
        if not _described(schema, where, key)
        and not re.search(rf"`{re.escape(key)}[`:= ]|\b{re.escape(key)}:", prose)
    ]
    assert not unexplained, f"explained nowhere (add a description or a sentence): {unexplained}"


def _described(schema: dict, where: str, key: str) -> bool:
    obj = schema if where == "Top level" else schema["$defs"][where]
    return bool(obj["properties"][key].get("description"))


def test_every_metric_is_documented():
    from harness.plugins import load_plugins
    from harness.score.registry import REGISTRY

    # The built-ins: other tests register metrics of their own in this process (a plugin's
    # `starts_with`), which the reference rightly leaves to `harness plugins`.
    builtin = {
        n for p in load_plugins() if p.source == "built-in" for n in p.registered.get("metrics", [])
    }
    assert builtin and builtin <= set(REGISTRY)
    reference = (REFERENCE / "metrics.md").read_text(encoding="utf-8")
    missing = [n for n in sorted(builtin) if f"| `{n}` |" not in reference]
    assert not missing, f"not in docs/reference/metrics.md: {missing}"


def test_every_exit_code_is_documented_in_the_reference_and_the_readme():
    from harness.cli._common import EXIT_CODES_HELP

    codes = re.findall(r"^\s+(\d+)\s", EXIT_CODES_HELP, re.M)
    assert {"0", "1", "2", "3", "130"} <= set(codes)
    reference = (REFERENCE / "exit-codes.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code in codes:
        assert f"| {code} |" in reference, code
        assert f"| {code} |" in readme, code


def _slug(heading: str) -> str:
    """Python-Markdown's toc slug (what mkdocs uses for #anchors)."""
    text = re.sub(r"`|\*\*|<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[-\s]+", "-", text).strip("-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize(
    "page", [*PAGES, ROOT / "README.md"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_link_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # an external address
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        missing_anchor = anchor and dest.suffix == ".md" and anchor not in _anchors(dest)
        if not dest.exists() or missing_anchor:
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_the_readme_stays_short_and_keeps_the_two_set_up_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 8500
    assert (
        'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-cache-dir --force-reinstall --no-deps '
        "llama-cpp-python==0.3.36 && pip install -e '.[local]' && harness run suites/quickstart.yaml"
    ) in readme
    assert (
        "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install --no-cache-dir -e '.[local,test]' && "
        "bash scripts/check.sh"
    ) in readme


def test_the_shown_outputs_of_cheap_commands_are_current():
    result = _script("gen_docs_outputs.py", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cheap_outputs_do_not_read_a_readers_own_runs(tmp_path):
    # README: run the quickstart, then the tests. The quickstart registers a protocol in runs/
    # that `harness check` of the tutorial's suite would report: the cheap blocks run in a copy
    # of the checkout without runs/, mlruns/ and models/.
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_docs_outputs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    copy = gen.scratch_copy(tmp_path)
    names = {p.name for p in copy.iterdir()}
    assert {"suites", "data", "harness", "docs"} <= names
    assert not names & {"runs", "mlruns", "models", ".git"}
    assert (copy / "suites").resolve() == ROOT / "suites"


def test_every_file_a_run_writes_is_documented(openai_server, fake_key, isolated_cwd):
    from harness.run import RunOptions, run_suite

    server = openai_server()
    suite = write_suite(isolated_cwd, server.url, n=6)
    outcome = run_suite(
        suite,
        RunOptions(runs_dir=isolated_cwd / "runs", workers=0, show_progress=False, timings=True),
    )
    page = (REFERENCE / "run-files.md").read_text(encoding="utf-8")
    names = set()
    for path in (p for p in outcome.run_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(outcome.run_dir).as_posix()
        for variant in outcome.variants:
            rel = re.sub(rf"^results/{re.escape(variant)}\.", "results/<variant>.", rel)
        names.add(rel.split("/")[0] + "/" if rel.startswith("plots/") else rel)
    assert {"suite.yaml", "summary.json", "results/<variant>.jsonl"} <= names
    missing = [n for n in names if f"`{n}`" not in page]
    assert not missing, f"not in docs/reference/run-files.md: {missing}"


@pytest.mark.skipif(
    shutil.which("mkdocs") is None, reason="mkdocs is not installed (pip install -e '.[test]')"
)
def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run(
        ["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
