"""Stopping a halted trial: the gateway half of "a stop ends the agent's run promptly".

A trial's first stop reason halts it (``GatewayTrial.halt``); after ``stop_grace_s`` (time
for a harness to end by itself on the refusal it got) the harness is stopped two ways at
once: ``on_stop`` (the sandbox's ``kill_all``, from the host) and the answer to the
in-sandbox launcher's long poll of ``STOP_PATH`` (the launcher then kills the CLI's
process group from inside), so a stop works even where ``kill_all`` cannot reach a
running command. Why it stopped stays in ``GatewayTrial.stopped`` and the event log.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from .trials import GatewayTrial
from .wire import error_body

if TYPE_CHECKING:
    from .config import GatewayConfig
    from .keys import Redactor

#: the launcher's long poll: answered when the gateway stops the trial
STOP_PATH = "/ale/stop"


class Stops:
    """Mixed into ``Gateway``: halting, stopping, and the launcher's stop watch."""

    config: GatewayConfig
    trials: dict[str, GatewayTrial]
    redact: Redactor
    _shutting_down: bool = False

    def _trial_of(self, request: web.Request) -> GatewayTrial | None:
        raise NotImplementedError

    def _halt(self, trial: GatewayTrial, kind: str, reason: str) -> None:
        """Halt ``trial`` for ``reason`` (on the gateway loop): refuse what follows, and stop
        the harness after the grace unless it ends by itself."""
        if trial.halt(kind, reason):
            trial.log({"halt": kind, "reason": reason[:2000]})
            task = asyncio.get_running_loop().create_task(self._stop_later(trial))
            pending: set[asyncio.Task[None]] = self.__dict__.setdefault("_stop_tasks", set())
            pending.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(pending.discard)

    def _cancel_stops(self) -> None:
        """At shutdown (on the loop): drop the stops still waiting out their grace, and
        hang up the stop watches (the server would wait for them)."""
        self._shutting_down = True
        for task in list(self.__dict__.get("_stop_tasks", ())):
            task.cancel()

    async def _stop_later(self, trial: GatewayTrial) -> None:
        await asyncio.sleep(self.config.stop_grace_s)
        if trial.token not in self.trials:
            return  # the harness ended by itself
        trial.stopped = self.redact(trial.halt_reason or trial.halted or "stopped")
        trial.log({"stop": trial.halted, "grace_s": self.config.stop_grace_s})
        if trial.on_stop is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(None, trial.on_stop)
        except Exception as exc:  # the launcher's watch still stops the CLI
            trial.log({"stop_failed": self.redact(f"{type(exc).__name__}: {exc}")})

    async def _watch_stop(self, request: web.Request) -> web.StreamResponse:
        """The launcher's long poll: 200 with the reason once the gateway stops the trial,
        204 when the trial closes (or the launcher hangs up) first."""
        trial = self._trial_of(request)
        if trial is None:
            return web.json_response(
                error_body(401, "authentication_error", "unknown or closed ale trial token"), status=401
            )
        while trial.stopped is None:
            transport = request.transport
            gone = transport is None or transport.is_closing() or self._shutting_down
            if gone or trial.token not in self.trials:
                return web.Response(status=204)
            await asyncio.sleep(0.2)
        return web.Response(text=trial.stopped)
