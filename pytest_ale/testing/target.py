"""``Target``: the provider the conformance suite checks, and how to build one by name.

A target makes fresh providers (``make(**options)``, the options added to its own), and may
say more than the interface can: whether what a provider held for a sandbox is gone as its
control plane sees it (``gone``), why it cannot run here (``skip``), and what a crashed
worker leaves behind (``abandon``). ``from_option`` builds one from
``--ale-conformance=NAME[,KEY=VALUE...]``: the provider registered as (or the preset named)
``NAME``, with those options.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import presets, registry
from ..errors import ConfigError
from ..options import is_preset_path, key_values
from ..sandbox import Provider, Sandbox, SandboxSpec


def crashed(provider: Provider, sandbox: Sandbox) -> None:
    """What a worker killed mid-trial leaves: the sandbox never released, the provider's
    bookkeeping of it gone with the process, and with it what only that process held (its
    connection; a lock, ``held.lock``, as a static host's)."""
    held = provider.held.pop(sandbox, None)
    sandbox.close()
    lock = getattr(held, "lock", None)
    if lock is not None:
        lock.release()


def _runs_anywhere() -> str | None:
    return None


@dataclass
class Target:
    """One provider under test."""

    name: str
    #: a fresh provider, ``options`` added to the target's own
    make: Callable[..., Provider]
    #: ``gone(provider, held)``: whether what the provider held for a sandbox
    #: (``provider.held[sandbox]`` right after ``acquire``) is gone where the provider keeps
    #: it (its cloud's API, the engine, the host); the interface alone cannot ask, so
    #: without it a released sandbox is only checked to refuse commands
    gone: Callable[[Provider, Any], bool] | None = None
    #: why this target cannot run here (a missing engine), or ``None``
    skip: Callable[[], str | None] = _runs_anywhere
    #: leave a sandbox as a worker killed mid-trial would, for ``sweep`` to find
    abandon: Callable[[Provider, Sandbox], None] = crashed

    def skip_reason(self) -> str | None:
        """``skip()``, unless ``ALE_REQUIRE_<NAME>=1`` makes a missing part a failure."""
        reason = self.skip()
        flag = f"ALE_REQUIRE_{self.name.upper().replace('-', '_')}"
        if reason and os.environ.get(flag) == "1":
            raise RuntimeError(f"{flag}=1 but {reason}")
        return reason


def spec_for(target: Target, run_id: str = "conformance", **extra: Any) -> SandboxSpec:
    """A sandbox spec for one check, with a trial id of its own."""
    return SandboxSpec(run_id=run_id, trial_id=f"conformance/{target.name}::{uuid.uuid4().hex[:6]}", **extra)


def from_option(value: str, rootdir: Path, invocation_dir: Path | None = None) -> Target:
    """The target ``--ale-conformance=NAME[,KEY=VALUE...]`` names: a provider preset or a
    registered kind (as ``--ale-provider`` resolves it: a preset file relative to
    ``invocation_dir``, the folder pytest was started in), the options given on top."""
    name, *pairs = [part.strip() for part in value.split(",")]
    if not name:
        raise ConfigError(f"--ale-conformance takes NAME[,KEY=VALUE...], not {value!r}")
    if invocation_dir is not None and is_preset_path(name):
        name = str(invocation_dir / Path(name).expanduser())
    options = key_values([p for p in pairs if p], "--ale-conformance")
    given = dict.fromkeys(options, "--ale-conformance")
    preset = presets.resolve(name, "providers", rootdir, options, given, invocation_dir)
    kind = registry.load(registry.PROVIDER_GROUP, preset.kind)
    if not (isinstance(kind, type) and issubclass(kind, Provider)):
        raise ConfigError(f"{name!r} ({preset.kind}) is not a pytest_ale Provider: {kind!r}")
    preset.validate(kind)  # a wrong option stops the run here, named with where it came from

    def make(**extra: Any) -> Provider:
        return kind({**preset.options, **extra})

    return Target(name=preset.name, make=make)  # a preset file by its stem, as --ale-provider
