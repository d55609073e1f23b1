"""The exception hierarchy. The CLI maps each class to an exit code; messages say how to fix."""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error a user can act on (never shown with a traceback)."""

    exit_code = 2


class SuiteError(HarnessError):
    """The suite, its data or the command line is wrong; nothing was called (exit 2)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ):
        self.message = message
        self.file = file
        self.key = key
        self.line = line
        self.column = column
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"


class ProviderError(HarnessError):
    """Model calls could not be made or judged (exit 3)."""

    exit_code = 3


class LocalModelCrashed(ProviderError):
    """The local model's native code died (a signal in its worker process); the run stops (exit 3)."""

    # What to do before `--resume`: a worker's death is a llama-cpp-python build's fault.
    fix_first = "after the rebuild"


class ServerCrashed(LocalModelCrashed):
    """An inference server harness started (llama.cpp's, vLLM's) died while serving (exit 3): out
    of memory, a broken model file — its log says which, not a llama-cpp-python build."""

    fix_first = "once what its log shows is fixed"


class TrackingError(HarnessError):
    """The tracking store could not be used."""

    exit_code = 3


class SuiteErrors(SuiteError):
    """Several problems found at once; reported together so a user fixes them in one pass."""

    def __init__(self, errors: list[SuiteError]):
        self.errors = errors
        first = errors[0]
        super().__init__(
            first.message, file=first.file, key=first.key, line=first.line, column=first.column
        )

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


class StorageError(HarnessError):
    """Results could not be written (disk full, a read-only runs dir, an unwritable --junit or
    --pr-comment path): nothing paid is lost, the message says how to resume (exit 4)."""

    exit_code = 4


class RunInterrupted(HarnessError):
    """Ctrl-C / SIGTERM: results so far are on disk; the message says how to resume."""

    exit_code = 130
