import json
import subprocess
import sys

from click.testing import CliRunner

from harness.cli import main
from harness.suite.schema import SHIPPED, generate_schema_text


def test_shipped_schema_is_up_to_date():
    assert SHIPPED.read_text() == generate_schema_text(), "run: python -m harness.suite.schema"


def test_schema_command_prints_the_shipped_schema():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) >= {"name", "task", "data", "metrics", "variants"}


def test_help_and_check_do_not_import_litellm_or_mlflow():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from harness.cli import main\n"
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(main, ['check', 'suites/quickstart.yaml']); assert r.exit_code == 0, r.output\n"
        "heavy = sorted(m for m in ('litellm', 'mlflow', 'llama_cpp', 'openai') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=SHIPPED.parents[2]
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
