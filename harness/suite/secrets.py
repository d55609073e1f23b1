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
_literal: set[str] = set()  # credentials a loaded suite wrote literally: masked in every message
# A header's value is a credential unless its name is one of these (an unknown gateway header,
# `Ocp-Apim-Subscription-Key` or `X-Auth`, is a key under another name).
HEADER_MAPS = re.compile(r"^(extra_|default_)?headers$", re.I)
SAFE_HEADERS = frozenset(
    h.lower()
    for h in (
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Anthropic-Version",
        "Anthropic-Beta",
        "Cache-Control",
        "Content-Type",
        "HTTP-Referer",
        "OpenAI-Beta",
        "OpenAI-Organization",
        "OpenAI-Project",
        "User-Agent",
        "X-Title",
    )
)
# Query parameters that carry credentials in a URL (`?key=`, Azure's `sig=`, ...).
_QUERY_SECRET = re.compile(
    r"([?&;](?:[\w.\-]*(?:key|token|secret|password|passwd|auth|credential)[\w.\-]*|sig|"
    r"signature|code|access_token|x-amz-[\w\-]+)=)[^&#\s\"'<>]+",
    re.I,
)
# Known key shapes: OpenAI/Anthropic-style `sk-...`, bearer tokens, AWS access key ids.
_KEY_SHAPES = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}|\bAKIA[0-9A-Z]{16}\b")
_BEARER = re.compile(r"(\bBearer\s+)[^\s\"',;]+", re.I)


def only_references(value: Any) -> bool:
    """True for a string made of `${env:NAME}` references only (nothing literal to hide)."""
    return isinstance(value, str) and bool(ENV_REF.search(value)) and not ENV_REF.sub("", value)


def expand_env(value: Any) -> Any:
    """`value` with every `${env:NAME}` replaced by the variable's value (dicts, lists, strings).
    An unset or empty variable is a SuiteError naming it: it would be sent as the key."""
    if isinstance(value, str):
        if "${env:" not in value:
            return value

        def sub(m: re.Match) -> str:
            name = m.group(1)
            if not os.environ.get(name):
                state = "is empty" if name in os.environ else "is not set"
                raise SuiteError(f"${{env:{name}}}: environment variable {name} {state} — set it")
            _referenced.add(name)
            return os.environ[name]

        return ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def missing_env(value: Any) -> list[str]:
    """Variables `value` references that the environment lacks or holds empty."""
    if isinstance(value, str):
        return [n for n in ENV_REF.findall(value) if not os.environ.get(n)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in missing_env(v)]
    if isinstance(value, list):
        return [n for v in value for n in missing_env(v)]
    return []


_ANY_REF = re.compile(r"\$\{env:([^}]*)\}?")


def malformed_refs(obj: Any, key: tuple = ()) -> list[tuple[tuple, str]]:
    """(key path, the reference) of every `${env:...}` that is not `${env:NAME}` with NAME a
    variable name (`${env:}`, `${env:bad-name}`, an unclosed `${env:KEY`): it would be sent
    literally, as the key."""
    out: list[tuple[tuple, str]] = []
    if isinstance(obj, str):
        for m in _ANY_REF.finditer(obj):
            if not ENV_REF.fullmatch(m.group(0)):
                out.append((key, m.group(0)))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out += malformed_refs(v, (*key, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += malformed_refs(v, (*key, i))
    return out


def url_userinfo(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return "@" in parts.netloc


def _redact_url(text: str) -> str:
    """scheme://user:password@host → scheme://***@host; ?key=… → ?key=***."""
    text = re.sub(r"(\b[a-z][a-z0-9+.\-]*://)[^/@\s]+@", rf"\1{MASK}@", text, flags=re.I)
    return _QUERY_SECRET.sub(rf"\1{MASK}", text)


def url_secrets(url: str) -> bool:
    """True when a URL carries a credential (userinfo or a credential-like query parameter)."""
    return url_userinfo(url) or bool(_QUERY_SECRET.search(url))


def _secret_header(name: Any, value: Any) -> bool:
    return (
        isinstance(value, str)
        and not only_references(value)
        and str(name).lower() not in SAFE_HEADERS
    )


def redact(obj: Any) -> Any:
    """A copy of a suite (or any nested value) with credentials masked: values under a
    credential-named key unless they are only `${env:...}` references, and URL userinfo."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and SECRET_KEY.search(k) and not isinstance(v, (dict, list)):
                out[k] = v if v is None or only_references(v) else MASK
            elif isinstance(k, str) and HEADER_MAPS.match(k) and isinstance(v, dict):
                out[k] = {h: MASK if _secret_header(h, x) else redact(x) for h, x in v.items()}
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return _redact_shapes(obj)
    return obj


def literal_secrets(obj: Any, prefix: str = "") -> list[str]:
    """Key paths of credentials written literally in a suite (shown with the fix)."""
    return [path for path, _ in _literals(obj, prefix)]


def _literals(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(key path, value) of every credential written literally: under a credential-named key,
    a header not in SAFE_HEADERS, or a credential in a URL's userinfo or query."""
    out: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}{k}"
            if isinstance(k, str) and SECRET_KEY.search(k) and isinstance(v, str):
                if not only_references(v):
                    out.append((path, v))
            elif isinstance(k, str) and HEADER_MAPS.match(k) and isinstance(v, dict):
                out += [(f"{path}.{h}", x) for h, x in v.items() if _secret_header(h, x)]
            else:
                out.extend(_literals(v, path + "."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_literals(v, f"{prefix[:-1]}[{i}]."))
    elif isinstance(obj, str) and "://" in obj and url_secrets(obj):
        out.append((prefix[:-1], obj))
    return out


def masked_credentials(obj: Any, prefix: str = "") -> list[str]:
    """Key paths of credentials a run's suite.yaml keeps masked: a call built from it (a
    `diagnose --probe`) would send `***` as the credential."""
    return [path for path, value in _literals(obj, prefix) if MASK in value]


def remember_literals(raw: Any) -> None:
    """Mask a loaded suite's literal credentials in every later message (a provider echoing a
    header back in its error text)."""
    for _, value in _literals(raw):
        if "${env:" in value:
            continue  # a reference, or a malformed one (a suite error that must stay readable)
        if "://" in value:
            for m in _QUERY_SECRET.finditer(value):
                _literal.add(value[m.end(1) : m.end()])
        elif len(value) >= 4:
            _literal.add(value)
            _literal.update(p for p in value.split() if len(p) >= 8)  # "Basic xyz…" → "xyz…"


def redact_text(text: str) -> str:
    """A message with secret values removed — the one redaction of everything harness prints
    or writes: environment values that look secret or that a suite referenced, credentials a
    suite wrote literally, known key shapes (sk-…, Bearer …), URL userinfo and credential-like
    query parameters."""
    if not isinstance(text, str) or not text:
        return text
    values = [v for n, v in os.environ.items() if n in _referenced or _SECRET_ENV.search(n)]
    for value in sorted({*values, *_literal}, key=len, reverse=True):
        if value and len(value) >= 6 and value in text:
            text = text.replace(value, MASK)
    return _redact_shapes(text)


def _redact_shapes(text: str) -> str:
    """Credentials recognisable by their form alone (a suite's strings get only this: its
    words must not change because some variable happens to hold the same text)."""
    text = _BEARER.sub(rf"\1{MASK}", _KEY_SHAPES.sub(MASK, text))
    return _redact_url(text)
