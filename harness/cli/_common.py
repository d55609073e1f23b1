"""What every command shares: the exit-code help, the error handler, common options."""

from __future__ import annotations

import sys
from functools import wraps

import click

from harness._util.text import strip_controls
from harness.errors import HarnessError, StorageError

EXIT_CODES_HELP = """\b
Exit codes:
  0  every guarded variant passed (or the suite declares no guard)
  1  the guard flagged something: fail, inconclusive, abandon; or a regression
  2  the suite or the command line is wrong; nothing was called
  3  the run could not be judged: provider errors above max_error_rate, or the local
     model crashed (the message says how to rebuild it and resume)
  4  results could not be written (disk full, read-only directory, unwritable --junit or
     --pr-comment path): nothing paid is lost; free space or fix the path and --resume
  130  interrupted (Ctrl-C / SIGTERM): results so far are saved; finish with --resume
"""


tracking_uri_option = click.option(
    "--tracking-uri",
    default=None,
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db).",
)


def runs_dir_option(help_text: str):
    return click.option(
        "--runs-dir",
        default="runs",
        show_default=True,
        type=click.Path(file_okay=False),
        help=help_text,
    )


def verdict_options(fn):
    """--json, --junit and --allow-inconclusive: what every command ending in a verdict takes."""
    fn = click.option(
        "--allow-inconclusive",
        is_flag=True,
        help="Exit 0 when a guarded variant is only inconclusive.",
    )(fn)
    fn = click.option(
        "--junit",
        default=None,
        type=click.Path(dir_okay=False),
        metavar="FILE",
        help="Write verdicts as JUnit XML (for CI).",
    )(fn)
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout."
    )(fn)


def safe_text(text) -> str:
    """What harness prints: one redaction (harness.suite.secrets.redact_text) and no terminal
    control sequences, whatever the message came from (a provider, a data file, a model)."""
    # Imported here: `harness --help` loads this module and must not load the suite's models.
    from harness.suite.secrets import redact_text

    return strip_controls(redact_text(str(text)))


def echo(text="", **kwargs) -> None:
    click.echo(safe_text(text), **kwargs)


def handle_errors(fn):
    """User errors print one clear message and exit with their code; bugs keep their traceback.
    A write that fails on the disk (full, read-only) is a StorageError (exit 4), not a bug."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarnessError as e:
            for line in str(e).splitlines():
                click.echo(f"Error: {safe_text(line)}", err=True)
            sys.exit(e.exit_code)
        except OSError as e:
            if not is_storage_failure(e):
                raise
            err = storage_error(e, _rerun())
            for line in str(err).splitlines():
                click.echo(f"Error: {safe_text(line)}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            # Ctrl-C outside the send loop (loading, rendering, the report): nothing half-done
            # is kept or lost there, and a user who pressed it wants no traceback.
            click.echo("Error: interrupted", err=True)
            sys.exit(130)

    return wrapper


def _rerun() -> str:
    """How to redo the command: --resume only where it has that flag (diagnose and register
    have none)."""
    ctx = click.get_current_context(silent=True)
    if ctx and any(p.name == "resume" for p in ctx.command.params):
        return "the same command with --resume"
    return "the same command again"


# EEXIST: a file where a directory must be made (runs/.protocol taken by a file).
STORAGE_ERRNOS = {
    "EEXIST",
    "ENOSPC",
    "EROFS",
    "EACCES",
    "EPERM",
    "EDQUOT",
    "EFBIG",
    "EISDIR",
    "ENOTDIR",
}


def is_storage_failure(e: OSError) -> bool:
    import errno

    return errno.errorcode.get(e.errno or 0) in STORAGE_ERRNOS


def storage_error(e: OSError, resume: str = "the same command with --resume") -> StorageError:
    where = f" ({e.filename})" if e.filename else ""
    return StorageError(
        f"could not write results{where}: {e.strerror or e} — nothing paid is lost (answers are "
        f"in the response cache and the run directory); free space or fix the path, then run "
        f"{resume}"
    )
