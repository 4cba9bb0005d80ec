"""``command``: any CLI as a harness, from a preset's command template.

A preset (``agents/NAME.yaml``)::

    kind: command
    command: "my-agent --task-file {instruction_file} --cwd {workdir}"
    install: "pip install my-agent"      # optional, run once in each sandbox
    env: {MY_AGENT_MODE: headless}       # optional

Placeholders: ``{instruction}`` (shell-quoted text), ``{instruction_file}``, ``{workdir}``,
``{output_dir}``, ``{model}``, ``{timeout}``. The command runs through ``/bin/sh`` in the
workspace; its stdout and stderr are the agent log.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, InfrastructureError
from ..sandbox import Sandbox
from .base import Agent, AgentContext, AgentResult, run_script

#: instructions up to this size travel in the environment (one exec string may hold 128 KiB)
INLINE_INSTRUCTION_BYTES = 64 * 1024
INLINE_VAR = "ALE_INSTRUCTION_TEXT"
PLACEHOLDERS = frozenset({"instruction", "instruction_file", "workdir", "output_dir", "model", "timeout"})


class CommandAgent(Agent):
    name = "command"

    def __init__(self, options: Mapping[str, Any] | None = None, label: str | None = None):
        super().__init__(options, label)
        template = self.options.get("command")
        if not isinstance(template, str) or not template.strip():
            raise ConfigError(
                f"agent {self.label!r}: a 'command' agent needs a non-empty 'command' "
                'template in its preset, e.g. command: "my-agent {instruction_file}"'
            )
        unknown = {field for _, field, _, _ in string.Formatter().parse(template) if field} - PLACEHOLDERS
        if unknown:
            raise ConfigError(
                f"agent {self.label!r}: unknown placeholder(s) {sorted(unknown)} in command; "
                f"use {sorted(PLACEHOLDERS)}"
            )
        self.template = template
        env = self.options.get("env") or {}
        if not isinstance(env, Mapping):
            raise ConfigError(f"agent {self.label!r}: 'env' must be a mapping of names to values")
        self.env = {str(k): str(v) for k, v in env.items()}

    def install(self, sandbox: Sandbox) -> None:
        script = self.options.get("install")
        if not script:
            return
        result = sandbox.sh(str(script), timeout=float(self.options.get("install_timeout", 900)))
        if not result.ok:
            raise InfrastructureError(
                f"agent {self.label!r}: install command failed (exit {result.exit_code}): "
                f"{(result.stderr or result.stdout)[-2000:]}"
            )

    def run(self, sandbox: Sandbox, context: AgentContext) -> AgentResult:
        instruction_file = f"{sandbox.scratch.rstrip('/')}/ale-instruction.md"
        env = {**self.env, "ALE_INSTRUCTION_FILE": instruction_file}
        prelude = ""
        if len(context.instruction.encode()) <= INLINE_INSTRUCTION_BYTES:
            # written by the command's own shell: one call to the sandbox, not two
            env[INLINE_VAR] = context.instruction
            target = shlex.quote(instruction_file)
            prelude = f'printf "%s\\n" "${INLINE_VAR}" > {target}; unset {INLINE_VAR}\n'  # then the command
        else:
            sandbox.write_text(instruction_file, context.instruction + "\n")
        command = self.template.format(
            instruction=shlex.quote(context.instruction),
            instruction_file=shlex.quote(instruction_file),
            workdir=shlex.quote(context.workdir),
            output_dir=shlex.quote(f"{context.workdir.rstrip('/')}/output"),
            model=shlex.quote(context.model or self.model or ""),
            timeout=int(context.timeout_s),
        )
        return run_script(
            sandbox, context, ["/bin/sh", "-c", prelude + command], env=env, version=self.version()
        )
