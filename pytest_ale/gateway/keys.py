"""The real API keys (host side only) and the redaction of every known secret.

Keys come from the environment or a dotenv file (``--ale-env-file``; its entries win).
They are used by the gateway when it forwards upstream and never leave this process.
``Redactor`` blanks every known secret value (the keys, and any variable that looks like
a secret) out of text before it is written to logs, cassettes or artifacts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

#: provider -> environment variables holding its key, first found wins
KEY_VARS: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}


def key_names(provider: str) -> str:
    """The variables that hold ``provider``'s key, for messages: ``GEMINI_API_KEY or ...``."""
    return " or ".join(KEY_VARS.get(provider, (f"{provider.upper()}_API_KEY",)))


SECRET_NAME = re.compile(r"(API_KEY|APIKEY|SECRET|TOKEN|PASSWORD|CREDENTIAL)", re.IGNORECASE)
MIN_SECRET = 8


@dataclass
class Keys:
    by_provider: dict[str, str]
    secrets: dict[str, str]  # name -> value, everything to redact

    def key(self, provider: str) -> str | None:
        return self.by_provider.get(provider)


def load_keys(env_file: Path | None = None, environ: Mapping[str, str] | None = None) -> Keys:
    source: dict[str, str] = dict(os.environ if environ is None else environ)
    if env_file is not None:
        from dotenv import dotenv_values

        if not env_file.is_file():
            raise ConfigError(f"--ale-env-file {env_file} does not exist; give a KEY=VALUE dotenv file")
        source.update({k: v for k, v in dotenv_values(env_file).items() if v})
    by_provider = {}
    for provider, names in KEY_VARS.items():
        found = next((source[n] for n in names if source.get(n)), None)
        if found:
            by_provider[provider] = found
    secrets = {
        name: value for name, value in source.items() if SECRET_NAME.search(name) and len(value) >= MIN_SECRET
    }
    return Keys(by_provider, secrets)


class Redactor:
    """Replaces every known secret value with ``[REDACTED:NAME]``."""

    def __init__(self, secrets: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = secrets.items() if isinstance(secrets, Mapping) else secrets
        # longest first, so a secret containing another is replaced whole
        self.pairs = sorted(((n, v) for n, v in pairs if len(v) >= MIN_SECRET), key=lambda p: -len(p[1]))
        self._pattern = re.compile("|".join(re.escape(v) for _, v in self.pairs)) if self.pairs else None
        self._names = {v: n for n, v in self.pairs}

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: f"[REDACTED:{self._names[m.group(0)]}]", text)

    def bytes(self, data: bytes) -> bytes:
        if self._pattern is None or not any(v.encode() in data for _, v in self.pairs):
            return data
        return self(data.decode("utf-8", "replace")).encode()
