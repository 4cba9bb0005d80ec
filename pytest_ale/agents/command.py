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

from pydantic import Field, field_validator

from ..errors import InfrastructureError
from ..sandbox import Sandbox
from ..typed_options import AgentOptions
from .base import Agent, AgentContext, AgentResult, run_script

#: instructions up to this size travel in the environment (one exec string may hold 128 KiB)
INLINE_INSTRUCTION_BYTES = 64 * 1024
INLINE_VAR = "ALE_INSTRUCTION_TEXT"
PLACEHOLDERS = frozenset({"instruction", "instruction_file", "workdir", "output_dir", "model", "timeout"})


class CommandOptions(AgentOptions):
    """A ``command`` agent's preset."""

    #: the command template (placeholders: ``PLACEHOLDERS``)
    command: str = Field("", validate_default=True)
    #: a shell script run once in each sandbox before the command
    install: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    install_timeout: float = Field(900, gt=0)

    @field_validator("command")
    @classmethod
    def _template(cls, template: str) -> str:
        if not template.strip():
            raise ValueError(
                "a 'command' agent needs a non-empty 'command' template in its preset, "
                'e.g. command: "my-agent {instruction_file}"'
            )
        unknown = {field for _, field, _, _ in string.Formatter().parse(template) if field} - PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {sorted(unknown)} in command; use {sorted(PLACEHOLDERS)}"
            )
        return template


class CommandAgent(Agent):
    name = "command"
    Options = CommandOptions
    options: CommandOptions

    def __init__(self, options: Mapping[str, Any] | AgentOptions | None = None, label: str | None = None):
        super().__init__(options, label)
        self.template = self.options.command
        self.env = dict(self.options.env)

    def install(self, sandbox: Sandbox) -> None:
        script = self.options.install
        if not script:
            return
        result = sandbox.sh(script, timeout=self.options.install_timeout)
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
