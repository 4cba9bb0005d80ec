"""Per-process run state: settings, agent instances, the provider, and where results go.

One ``AleSession`` per pytest process (the controller and each xdist worker). The
provider is created on first use, so collecting (``--collect-only``) provisions nothing.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import presets, registry
from .agents.base import Agent
from .credentials import TaskCredentials
from .datastore import open_store
from .errors import ConfigError
from .gateway import runtime
from .liveness import RunLock
from .options import Settings
from .outcome import TrialResult
from .sandbox import Provider, SandboxSpec
from .typed_options import ProviderOptions
from .watched import WatchedProvider

if TYPE_CHECKING:
    from .task import TaskDefinition

STATIC_MARKERS = {
    "linux": "task runs on Linux",
    "windows": "task needs a Windows machine",
    "macos": "task needs a macOS machine",
    "gpu": "task needs a GPU",
    "licensed": "task needs licensed software",
    "near_term": "tier: near-term",
    "full_spectrum": "tier: full-spectrum",
    "last_exam": "tier: last-exam",
}


class AleSession:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self._agents: dict[str, Agent] = {}
        self._agent_presets = {}
        overrides = dict(settings.agent_options)
        origins = dict.fromkeys(overrides, settings.opt_origins.get("agent", "--ale-agent-opt"))
        if settings.model:
            overrides["model"], origins["model"] = settings.model, "--ale-model"
        where = settings.invocation_dir
        for name in settings.agents:
            preset = presets.resolve(name, "agents", settings.rootdir, overrides, origins, where)
            label = preset.name  # a preset file's stem, never its path
            if label in self._agents:
                raise ConfigError(
                    f"--ale-agent {name!r}: another agent of the matrix is already labelled "
                    f"{label!r}; give the preset files different names"
                )
            self._agent_presets[label] = preset
            agent_class = registry.load(registry.AGENT_GROUP, preset.kind)
            self._agents[label] = agent_class(preset.validate(agent_class), label=label)
        given = settings.opt_origins.get("provider", "--ale-provider-opt")
        self.provider_preset = presets.resolve(
            settings.provider,
            "providers",
            settings.rootdir,
            settings.provider_options,
            dict.fromkeys(settings.provider_options, given),
            where,
        )
        #: the provider's label in results and tables: the preset's name (a file's stem)
        self.provider_label = self.provider_preset.name
        #: the registered kind's class; ``None`` when only a ``pytest_ale_make_provider``
        #: hook can make it (a kind no entry point registers)
        self.provider_class: type[Provider] | None = self._provider_class(config)
        #: the provider's options, checked once here (configure time, every process)
        #: against the registered kind's ``Options``; a kind only a hook makes checks its
        #: own when the hook makes it
        self.provider_options: ProviderOptions | None = None
        if self.provider_class is not None:
            self.provider_options = self.provider_preset.validate(self.provider_class)
            if settings.keep:
                self.provider_options = self.provider_options.model_copy(update={"keep": True})
        self._provider: Provider | None = None
        #: this process's hold on the run (``liveness``), taken when trials may run
        self.run_lock: RunLock | None = None
        #: test ids of the trials ``--ale-resume`` takes from results.jsonl (not run again)
        self.resumed: set[str] = set()
        self.data_store = open_store(settings.data, settings.rootdir)
        self.reference_store = open_store(settings.reference, settings.rootdir, "--ale-reference")
        #: ``--ale-credentials``: the files tasks declare, checked against the gateway's keys
        self.credentials = TaskCredentials(settings.credentials, runtime.known_keys)
        self._markers: set[str] = set(STATIC_MARKERS)
        for name, text in STATIC_MARKERS.items():
            config.addinivalue_line("markers", f"{name}: {text} (pytest-ale)")

    # -- agents and provider -----------------------------------------------------------
    @property
    def agents(self) -> list[str]:
        return list(self._agents)

    def agent(self, label: str) -> Agent:
        return self._agents[label]

    def _provider_class(self, config: pytest.Config) -> type[Provider] | None:
        try:
            found = registry.load(registry.PROVIDER_GROUP, self.provider_preset.kind)
        except ConfigError:
            if config.pluginmanager.hook.pytest_ale_make_provider.get_hookimpls():
                return None  # an extension may make it: asked when the first sandbox is
            raise
        if not (isinstance(found, type) and issubclass(found, Provider)):
            raise ConfigError(f"provider {self.settings.provider!r} is not a pytest_ale Provider")
        return found

    def provider(self) -> Provider:
        """The run's provider (one per process), made on first use: by a
        ``pytest_ale_make_provider`` hook if one returns it, else by the registered kind."""
        if self._provider is None:
            options = dict(self.provider_preset.options)
            if self.settings.keep:
                options["keep"] = True
            preset = dataclasses.replace(self.provider_preset, options=options)
            made = self.config.hook.pytest_ale_make_provider(config=self.config, preset=preset)
            if made is None:
                if self.provider_class is None:
                    raise ConfigError(
                        f"no provider kind {preset.kind!r} is registered and no "
                        "pytest_ale_make_provider hook made one"
                    )
                made = self.provider_class(self.provider_options)
            elif not isinstance(made, Provider):
                raise ConfigError(f"pytest_ale_make_provider returned {made!r}, not a pytest_ale Provider")
            self._provider = WatchedProvider(made)
        return self._provider

    def provider_refusal(self, task: TaskDefinition) -> str | None:
        spec = SandboxSpec(run_id="", trial_id="", os=task.card.os, gpu=task.card.gpu)
        if self.provider_class is None:  # only a hook makes it: what every provider hosts
            return Provider.supports(spec)
        return self.provider_class.supports(spec, self.provider_options)

    def close(self) -> None:
        self.credentials.close()
        try:
            if self._provider is not None:
                provider, self._provider = self._provider, None
                provider.close()
        finally:  # whatever the provider did, this process no longer holds the run
            if self.run_lock is not None:
                self.run_lock.release()
                self.run_lock = None

    def hold_run(self, role: str) -> RunLock:
        """Join the run's lock (``liveness``): the controller only when nothing of the run
        still lives (``RunBusyError`` otherwise), a worker beside its controller."""
        if self.run_lock is None:
            lock = RunLock(self.run_dir, role)
            lock.acquire(first=role == "controller")
            self.run_lock = lock
        return self.run_lock

    def sandbox_run_id(self, worker: str | None = None) -> str:
        """The run id sandboxes are labelled with: ``RUN@gwN`` on an xdist worker, so the
        controller can sweep exactly what a dead worker held (sweeping ``RUN`` takes all)."""
        worker = worker or getattr(self.config, "workerinput", {}).get("workerid")
        return f"{self.settings.run_id}@{worker}" if worker else self.settings.run_id

    # -- markers ---------------------------------------------------------------------
    def register_markers(self, names: list[str]) -> None:
        for name in names:
            if name not in self._markers:
                self._markers.add(name)
                self.config.addinivalue_line("markers", f"{name}: task card fact (pytest-ale)")

    # -- results ---------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.settings.output / "runs" / self.settings.run_id

    def artifacts_dir(self, item: pytest.Item) -> Path:
        task_folder: Path = item.task_folder  # type: ignore[attr-defined]
        try:
            rel = task_folder.resolve().relative_to(self.settings.rootdir.resolve())
        except ValueError:
            rel = Path(task_folder.name)
        leaf = re.sub(r"[^0-9A-Za-z_.-]+", "_", item.name.partition("[")[2].rstrip("]"))
        return self.run_dir / rel / (leaf or item.name)

    def record(self, result: TrialResult) -> None:
        """Append the trial to ``results.jsonl`` as one whole line, under a lock (xdist-safe).

        One ``write`` with SIGINT/SIGTERM held back, so an interrupt never cuts a line; a
        line a SIGKILL cut short before is ended first, so it spoils no other line."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(result.to_json(), sort_keys=True) + "\n").encode()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            fd = os.open(self.run_dir / "results.jsonl", flags, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                while data:
                    data = data[os.write(fd, data) :]
            finally:
                os.close(fd)  # drops the lock
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
