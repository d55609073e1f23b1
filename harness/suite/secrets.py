"""Credentials in a suite: `${env:NAME}` references, expanded only when a call is sent, and
redaction of anything that looks like a credential wherever a suite is persisted, logged or
shown (runs/<suite>/<id>/suite.yaml, which MLflow logs, and error messages).

A reference stays a reference everywhere else: in the resolved suite, the cache key (rotating a
key keeps the cache) and every file harness writes.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from harness.errors import SuiteError

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
# Mapping keys whose values are credentials (params.api_key, extra_headers.Authorization, ...).
# Matched at the end of the key, so `max_tokens` or `training.tokens` are not credentials.
SECRET_KEY = re.compile(
    r"(^|[_\-.])(api[_\-]?key|apikey|token|secret|password|passwd|authorization|cookie|"
    r"credentials?)$",
    re.I,
)
MASK = "***"
_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.I)
_referenced: set[str] = set()  # environment variables a suite referenced: their values are secret


def only_references(value: Any) -> bool:
    """True for a string made of `${env:NAME}` references only (nothing literal to hide)."""
    return isinstance(value, str) and bool(ENV_REF.search(value)) and not ENV_REF.sub("", value)


def expand_env(value: Any) -> Any:
    """`value` with every `${env:NAME}` replaced by the variable's value (dicts, lists, strings).
    An unset variable is a SuiteError naming it."""
    if isinstance(value, str):
        if "${env:" not in value:
            return value

        def sub(m: re.Match) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise SuiteError(
                    f"${{env:{name}}}: environment variable {name} is not set — set it"
                )
            _referenced.add(name)
            return os.environ[name]

        return ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def missing_env(value: Any) -> list[str]:
    """Variables `value` references that the environment lacks."""
    if isinstance(value, str):
        return [n for n in ENV_REF.findall(value) if n not in os.environ]
    if isinstance(value, dict):
        return [n for v in value.values() for n in missing_env(v)]
    if isinstance(value, list):
        return [n for v in value for n in missing_env(v)]
    return []


def url_userinfo(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return "@" in parts.netloc


def _redact_url(text: str) -> str:
    """scheme://user:password@host → scheme://***@host."""
    return re.sub(r"(\b[a-z][a-z0-9+.\-]*://)[^/@\s]+@", rf"\1{MASK}@", text, flags=re.I)


def redact(obj: Any) -> Any:
    """A copy of a suite (or any nested value) with credentials masked: values under a
    credential-named key unless they are only `${env:...}` references, and URL userinfo."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and SECRET_KEY.search(k) and not isinstance(v, (dict, list)):
                out[k] = v if v is None or only_references(v) else MASK
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and "@" in obj:
        return _redact_url(obj)
    return obj


def literal_secrets(obj: Any, prefix: str = "") -> list[str]:
    """Key paths of credentials written literally in a suite (shown with the fix)."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}{k}"
            if isinstance(k, str) and SECRET_KEY.search(k) and isinstance(v, str):
                if not only_references(v):
                    out.append(path)
            else:
                out.extend(literal_secrets(v, path + "."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(literal_secrets(v, f"{prefix[:-1]}[{i}]."))
    return out


def redact_text(text: str) -> str:
    """A message with secret values removed: environment values that look secret or that a
    suite referenced, bearer tokens and URL userinfo."""
    for name, value in os.environ.items():
        secret = name in _referenced or _SECRET_ENV.search(name)
        if secret and value and len(value) >= 6 and value in text:
            text = text.replace(value, MASK)
    text = re.sub(r"(Bearer\s+)\S+", rf"\1{MASK}", text)
    return _redact_url(text)
