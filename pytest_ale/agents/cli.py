"""The shared base of CLI harnesses (Claude Code, Codex, Gemini CLI): install, configure,
launch headless behind the model gateway, hand back the log and the gateway's books.

A subclass names its npm package and binary and implements two methods: ``launch``
(argv, environment and config files for one run, with ``@ALE_BASE_URL@`` where the
gateway's in-sandbox URL goes) and ``convert`` (its JSON log to a ``Trajectory``; read it
with ``json_events``). ``run`` writes no file: the trial writes the artifacts and calls
``trajectory`` (which calls ``convert``) after the run, so a converter's bug costs the
trial its trajectory, never its score or a second paid run.
Real keys never enter the sandbox: the CLI gets a per-trial token that only the gateway
(host side, reached through a Unix socket bound into the sandbox) understands.

Preset options: ``model``, ``version`` (the npm version to pin and expect), ``install``
(``auto``: use the CLI found in the sandbox, else install the pinned version from npm on
the host and copy it in; ``never``; ``npm``: always copy the pinned version in),
``args`` (extra CLI arguments), ``env`` (extra environment), ``install_timeout``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..errors import ConfigError, InfrastructureError, ReplayDivergence  # noqa: F401 - its public home was here
from ..gateway import runtime
from ..gateway.launcher import PLACEHOLDER
from ..gateway.trials import GatewayTrial
from ..sandbox import ExecResult, Sandbox
from ..trajectory import AgentInfo, FinalMetrics, Step, StepMetrics, Trajectory
from ..typed_options import AgentOptions
from .base import Agent, AgentContext, AgentResult

GATEWAY_SOCKET = "/ale/gateway.sock"
LAUNCHER = Path(__file__).resolve().parent.parent / "gateway" / "launcher.py"
NPM_CACHE = Path.home() / ".cache" / "pytest-ale" / "npm"
BASE_URL = PLACEHOLDER


@dataclass
class Launch:
    """How to run the CLI once: ``~/`` in file paths and env values means the sandbox HOME."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


class CLIOptions(AgentOptions):
    """A CLI harness's preset (``agents/claude-code.yaml``, ...)."""

    #: auto: the CLI in the sandbox, else the pinned npm package copied in; never; npm
    install: Literal["auto", "never", "npm"] = "auto"
    #: extra CLI arguments and environment
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    install_timeout: float = Field(900, gt=0)


class CLIHarness(Agent):
    name: ClassVar[str] = "cli"
    npm_package: ClassVar[str] = ""
    binary: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    #: whose API the CLI speaks (``anthropic``, ``openai``, ``gemini``): the key it needs
    model_provider: ClassVar[str] = ""

    Options = CLIOptions
    options: CLIOptions

    def __init__(
        self, options: CLIOptions | Mapping[str, Any] | None = None, label: str | None = None
    ) -> None:
        super().__init__(options, label)
        self.model = self.model or self.default_model
        self.install_mode = self.options.install
        self.extra_args = list(self.options.args)
        self.extra_env = dict(self.options.env)
        self._command = self.binary
        self._version: str | None = None

    # -- to implement ---------------------------------------------------------------------
    def launch(self, context: AgentContext, command: str, token: str, model: str) -> Launch:
        raise NotImplementedError

    def convert(self, log: str, session_id: str, agent: AgentInfo, instruction: str) -> Trajectory:
        raise NotImplementedError

    # -- the Agent interface -----------------------------------------------------------------
    def sandbox_sockets(self, trial_id: str) -> dict[str, str]:
        return {GATEWAY_SOCKET: runtime.gateway().socket_path}

    def version(self) -> str | None:
        return self._version or self.options.version

    def install(self, sandbox: Sandbox) -> None:
        found = None if self.install_mode == "npm" else self._probe(sandbox, self.binary)
        if found is None and self.install_mode != "never":
            found = self._copy_from_npm(sandbox)
        if found is None:
            raise InfrastructureError(
                f"agent {self.label!r}: `{self.binary}` is not installed in the sandbox; install it "
                f"(npm install -g {self.npm_package}) or set install: auto / npm in the preset"
            )
        self._command, self._version = found

    def run(self, sandbox: Sandbox, context: AgentContext) -> AgentResult:
        gateway = runtime.gateway()
        missing = gateway.missing_key(self.model_provider)
        if missing:  # say so now, not after the CLI has retried a 401 for minutes
            raise ConfigError(f"agent {self.label!r}: {missing}")
        trial_id = sandbox.spec.trial_id
        trial = gateway.open_trial(
            trial_id, task=context.task_name, on_stop=sandbox.kill_all, timeout_s=context.timeout_s
        )
        model = context.model or self.model or self.default_model
        try:
            done = self._launch(sandbox, context, trial, model)
        except BaseException as exc:  # the sandbox failed under the run: keep what it spent
            gateway.close_trial(trial)
            with contextlib.suppress(Exception):  # never masking why
                self.keep_partial(trial_id, self._result(None, trial, model, exc))
            raise
        gateway.close_trial(trial)
        result = self._result(done, trial, model)
        problem = trial.fault()
        if problem is not None:  # the gateway's fault, not the agent's: an error, figures kept
            self.keep_partial(trial_id, result)
            raise problem
        return result

    def trajectory(self, run: AgentResult, instruction: str, session_id: str) -> dict[str, Any] | None:
        """``convert`` the CLI's log, with per-step figures from the gateway's events (when
        they line up), the run's totals and, last, why it ended short (``run.note``)."""
        info = AgentInfo(name=self.name, version=run.version or "unknown", model_name=run.model)
        trajectory = self.convert(run.transcript, session_id, info, instruction)
        _step_metrics(trajectory, run.gateway_events)
        if run.note:  # why the run ended short: the last step says so
            step = Step(step_id=len(trajectory.steps) + 1, source="system", message=run.note)
            trajectory.steps.append(step)
        trajectory.final_metrics = FinalMetrics(
            total_prompt_tokens=run.usage.input_tokens,
            total_completion_tokens=run.usage.output_tokens,
            total_cached_tokens=run.usage.cache_read_tokens,
            total_cost_usd=run.usage.cost_usd,
            total_steps=len(trajectory.steps),
        )
        return json.loads(runtime.gateway().redact(trajectory.model_dump_json(exclude_none=True)))

    def _launch(self, sandbox: Sandbox, context: AgentContext, trial: GatewayTrial, model: str) -> ExecResult:
        """Run the CLI once behind the launcher (relay, config files, stop watch)."""
        launch = self.launch(context, self._command, trial.token, model)
        launch.argv += self.extra_args
        launch.env.update(self.extra_env)
        scratch = sandbox.scratch.rstrip("/")
        spec = {
            "socket": sandbox.socket_paths[GATEWAY_SOCKET],
            "argv": launch.argv,
            "env": launch.env,
            "files": launch.files,
            "cwd": context.workdir,
            "log": f"{scratch}/ale-{self.name}.jsonl",
            "token": trial.token,  # the launcher's stop watch (already in the CLI's env)
        }
        sandbox.write_text(f"{scratch}/ale-launcher.py", LAUNCHER.read_text(encoding="utf-8"))
        sandbox.write_text(f"{scratch}/ale-launch.json", json.dumps(spec))
        return sandbox.exec(
            ["python3", f"{scratch}/ale-launcher.py", f"{scratch}/ale-launch.json"],
            timeout=context.timeout_s,
            env=context.env,
            cwd=context.workdir,
        )

    def _result(
        self, done: ExecResult | None, trial: GatewayTrial, model: str, failure: BaseException | None = None
    ) -> AgentResult:
        """The run's result from the gateway's books (always) and the CLI's log (when it
        ran to an end), redacted: no key the gateway holds reaches an artifact."""
        redact = runtime.gateway().redact
        if done is not None:
            stdout, stderr = redact(done.stdout), redact(done.stderr)
            log = stdout + ("\n--- stderr ---\n" + stderr if stderr.strip() else "")
        else:
            stdout = ""
            log = redact(f"(the harness run did not finish: {type(failure).__name__}: {failure})")
        usage = trial.meter.totals()
        usage.cost_usd = round(usage.cost_usd, 8)
        result = AgentResult(
            exit_code=None if done is None or done.timed_out else done.exit_code,
            timed_out=bool(done and done.timed_out),
            oom=bool(done and done.oom_killed),
            log=log,
            transcript=stdout,
            version=self.version(),
            model=model,
            duration_s=done.duration_s if done is not None else time.time() - trial.opened,
            usage=usage,
            budget_exceeded=trial.budget_exceeded,
            note=log if done is None else None,
            gateway=json.loads(redact(json.dumps(trial.summary()))),
            gateway_events=json.loads(redact(json.dumps(trial.events))),
            properties={"ale_model_requests": usage.requests},
        )
        if trial.rate_limit_retries:
            result.properties["ale_rate_limit_retries"] = trial.rate_limit_retries
        if trial.stopped:
            result.properties["ale_gateway_stop"] = trial.halted
            result.note = f"the model gateway stopped the agent ({trial.halted}): {trial.stopped}"
        return result

    def _probe(self, sandbox: Sandbox, command: str) -> tuple[str, str | None] | None:
        found = sandbox.sh(
            f"command -v {shlex.quote(command)} && {shlex.quote(command)} --version", timeout=60
        )
        if not found.ok:
            return None
        lines = found.stdout.strip().splitlines()
        match = re.search(r"\d+\.\d+\.\d+[\w.-]*", "\n".join(lines[1:]))
        return lines[0].strip(), match.group(0) if match else None

    def _copy_from_npm(self, sandbox: Sandbox) -> tuple[str, str | None] | None:
        """Install the pinned package on the host (cached), then copy it into the sandbox."""
        version = self.options.version or "latest"
        prefix = NPM_CACHE / f"{self.npm_package.replace('/', '__')}@{version}"
        if not (prefix / "node_modules" / ".bin" / self.binary).exists():
            prefix.mkdir(parents=True, exist_ok=True)
            try:
                subprocess.run(
                    [
                        "npm",
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--prefix",
                        str(prefix),
                        f"{self.npm_package}@{version}",
                    ],
                    check=True,
                    capture_output=True,
                    timeout=self.options.install_timeout,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                detail = getattr(exc, "stderr", b"") or b""
                raise InfrastructureError(
                    f"agent {self.label!r}: npm install {self.npm_package}@{version} failed: {exc} "
                    f"{detail.decode(errors='replace')[-1000:]}"
                ) from exc
        dest = f"{sandbox.scratch.rstrip('/')}/ale-npm"
        sandbox.stage(dest, {"node_modules": prefix / "node_modules"})
        return self._probe(sandbox, f"{dest}/node_modules/.bin/{self.binary}")


def json_events(log: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines log, one a line; other lines are skipped."""
    events = []
    for line in log.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
    return events


def _step_metrics(trajectory: Trajectory, events: list[dict[str, Any]]) -> None:
    """Per-step tokens and cost from the gateway's meter, when its answered tool-bearing
    requests line up one to one with the agent's steps (else the log's own figures stay)."""
    answered = [e for e in events if e.get("status") == 200 and e.get("tools")]
    agent_steps = [s for s in trajectory.steps if s.source == "agent"]
    if not answered or len(answered) != len(agent_steps):
        return
    for step, event in zip(agent_steps, answered, strict=True):
        cached = int(event.get("cache_read_tokens", 0))
        step.metrics = StepMetrics(
            prompt_tokens=int(event.get("input_tokens", 0)),
            completion_tokens=int(event.get("output_tokens", 0)),
            cached_tokens=cached,
            cost_usd=float(event.get("cost_usd", 0.0)),
        )
