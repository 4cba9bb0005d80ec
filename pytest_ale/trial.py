"""One trial's lifecycle, readable top to bottom (docs/architecture.md, "One trial", 1-9).

acquire -> stage input/software -> begin the task's attempt (``TaskDefinition.begin``: this
trial's own task state) and set it up -> install + run the agent (time-boxed)
-> fence (kill everything it started, until verifiably empty) -> collect output/ (capped)
-> check the fence again, hand the temp folders to the grader -> grade -> record ->
close the attempt and release, always. Infrastructure faults retry the whole trial on a
fresh sandbox (and a fresh attempt).

trial.py is the one writer of a trial's artifacts (``save_run``: agent.log, the gateway's
books, trajectory.json, converted after the run; the judge's books, ``judge.json(l)``,
after grading; then result.json); an agent only returns what it did (``AgentResult``).

Who is at fault decides the record (one rule, README "What pytest-ale guarantees"): what
the agent causes (output over a cap, a crash, a timeout, the budget) is graded, 0 unless
the grader gives partial credit; only infrastructure, task and grader faults are errors.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .agents.base import Agent, AgentContext, AgentResult
from .credentials import STAGED_AS, TaskCredentials
from .errors import AgentFault, AleError, InfrastructureError
from .fence import fence, verify
from .gateway.judge import JudgeBooks, judging
from .lease import Lease
from .network import NetworkSettings, TrialNetwork, open_network, resolve
from .outcome import ERROR_KINDS, TrialResult
from .sandbox import Provider, Sandbox, SandboxSpec
from .scoring import Grade, passes
from .task import TaskAttempt, TaskDefinition
from .taskguard import TaskCodeWarning
from .trajectory import process_trajectory


@dataclass
class TrialPlan:
    """Everything one trial needs, resolved by the plugin."""

    task: TaskDefinition
    variant: str
    trial: int
    agent: Agent
    provider: Provider
    provider_name: str
    run_id: str
    test_id: str
    artifacts: Path
    threshold: float
    timeout_s: float
    infra_retries: int = 1
    #: ``--ale-network`` / ``--ale-proxy-allow``: the run's say on each trial's network
    network: NetworkSettings = field(default_factory=NetworkSettings)
    #: the run id sandboxes are labelled with (``RUN@gwN`` on an xdist worker)
    sandbox_run_id: str = ""
    keep: bool = False
    on_phase: Callable[[str], None] | None = None
    #: ``--ale-credentials``: the run's folder of the credential files tasks declare
    credentials: TaskCredentials = field(default_factory=lambda: TaskCredentials(None))


def run_trial(plan: TrialPlan) -> TrialResult:
    """Run one trial to a ``TrialResult``; never raises for task, agent or grader faults."""
    task = plan.task
    result = TrialResult(
        run_id=plan.run_id,
        test_id=plan.test_id,
        task=str(task.name),
        domain=task.domain,
        agent=plan.agent.label,
        provider=plan.provider_name,
        variant=plan.variant,
        trial=plan.trial,
        threshold=plan.threshold,
        tier=task.card.tier,
        model=plan.agent.model,
        artifacts=str(plan.artifacts),
    )
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        result.attempts = attempt
        try:
            with _task_warnings(result):
                _attempt(plan, result)
            break
        except InfrastructureError as exc:
            if attempt <= plan.infra_retries:
                result.warnings.append(f"attempt {attempt}: infrastructure error, retried: {exc}")
                continue
            _fail(result, exc)
            break
        except AleError as exc:  # a task, grader, staging, settings or replay fault: no retry
            _fail(result, exc)
            break
    result.duration_s = time.monotonic() - started
    _ensure_trajectory(plan, result)
    result.write(plan.artifacts)
    return result


def _ensure_trajectory(plan: TrialPlan, result: TrialResult) -> None:
    """Every trial writes a trajectory, an error trial too (one that never reached its
    agent, or whose harness failed, gets the bare record of what happened)."""
    if (plan.artifacts / "trajectory.json").exists():
        return
    try:
        instruction = plan.task.instruction(plan.variant)
    except Exception:  # a broken task's instruction may be what failed
        instruction = ""
    happened = f"trial {result.status} ({result.error_kind}): {result.error}" if result.error else ""
    bare = process_trajectory(
        plan.test_id, plan.agent.label, result.agent_version, instruction, happened, result.agent_exit_code
    )
    _write_trajectory(plan.artifacts, bare.model_dump(exclude_none=True))


def _write_trajectory(folder: Path, trajectory: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trajectory.json").write_text(json.dumps(trajectory, indent=2) + "\n")


def _fail(result: TrialResult, exc: AleError) -> None:
    """The trial ends in an error of ``exc``'s kind (``outcome.ERROR_KINDS``): no score."""
    assert exc.kind in ERROR_KINDS, exc.kind
    result.status = "error"
    result.error_kind = exc.kind
    result.error = str(exc)
    result.score = None


def _attempt(plan: TrialPlan, result: TrialResult) -> None:
    shutil.rmtree(plan.artifacts / "output", ignore_errors=True)
    # the trial's network policy (network.py): a proxy one's proxy lives as long as the try
    policy = resolve(plan.task.card.network, plan.network.policy)
    capabilities = plan.provider.options.capabilities(plan.provider.capabilities)
    net = open_network(policy, plan.network, capabilities)
    result.extra_properties["ale_network"] = policy
    try:
        _in_network(plan, result, net)
    finally:
        net.close()
        if net.proxy is not None:  # this try's connections only: a retry starts a new log
            result.extra_properties["ale_network_refused"] = len(net.proxy.refused())
            _write_jsonl(plan.artifacts / "network.jsonl", net.proxy.entries)


def _in_network(plan: TrialPlan, result: TrialResult, net: TrialNetwork) -> None:
    task, variant = plan.task, plan.variant
    phases = result.phases
    spec = SandboxSpec(
        run_id=plan.sandbox_run_id or plan.run_id,
        trial_id=plan.test_id,
        workdir=task.workdir(variant),
        os=task.card.os,
        gpu=task.card.gpu,
        cpus=task.card.resources["cpus"],
        memory_gb=task.card.resources["memory_gb"],
        disk_gb=task.card.resources["disk_gb"],
        sockets=plan.agent.sandbox_sockets(plan.test_id),
        extra={"snapshot": task.card.snapshot},
    )
    net.apply(spec)
    lease = Lease(plan.provider, spec, keep=plan.keep)
    with _phase(plan, phases, "acquire"):
        sandbox = lease.acquire()
    attempt: TaskAttempt | None = None
    try:
        data = task.data(variant)
        with _phase(plan, phases, "stage"):
            folders = {k: p for k, p in (("input", data.input), ("software", data.software)) if p}
            sandbox.stage(sandbox.workdir, folders)
            sandbox.mkdir(sandbox.path("output"))
            result.credentials = _stage_credentials(plan, sandbox)
        with _phase(plan, phases, "setup"):
            attempt = task.begin(sandbox, variant)
            attempt.setup()
        with _phase(plan, phases, "install"):
            plan.agent.install(sandbox)
        agent_result = _run_agent(plan, sandbox, attempt, phases, result)
        _absorb_agent(result, agent_result)
        with _phase(plan, phases, "fence"):
            fenced = fence(sandbox)
            if fenced.killed:
                result.warnings.append(f"fence: killed {fenced.killed} process(es) the agent left running")
        _save_run(plan, result, agent_result, attempt.instruction)
        with _phase(plan, phases, "collect"):
            try:
                output_dir = _collect(sandbox, plan.artifacts / "output", result)
            except AgentFault as exc:
                _agent_fault(result, exc, plan.threshold)
                return
        with _phase(plan, phases, "grade"):
            breach = verify(sandbox)
            if breach:
                result.warnings.append(f"fence: {breach} agent process(es) found before grading; killed")
            sandbox.prepare_grading()
            with net.grading(result.warnings):
                grade = _grade(plan, attempt, output_dir, result)
        result.score = grade.score
        result.explanation = grade.explanation
        result.status = _status(result, plan.threshold)
        result.error = result.error_kind = None
    finally:
        with _phase(plan, phases, "release"):
            try:
                if attempt is not None:
                    attempt.close()
            finally:
                if plan.keep:
                    result.warnings.append(f"kept for debugging: {sandbox.describe()}")
                lease.release()


def _grade(plan: TrialPlan, attempt: TaskAttempt, output_dir: Path, result: TrialResult) -> Grade:
    """The attempt grades with its judge's model calls through the gateway (``judge.py``):
    their figures go to ``judge_usage`` and ``judge.jsonl``, never to the agent's."""
    books = JudgeBooks()
    try:
        with judging(plan.test_id, str(plan.task.name), plan.task.card.grader_timeout_s, books):
            return attempt.grade(output_dir)
    finally:
        result.judge_usage.add(books.usage)  # summed over attempts, as the agent's
        if books.summary is not None:
            _write_books(plan.artifacts, "judge", books.summary, books.events)


def _stage_credentials(plan: TrialPlan, sandbox: Sandbox) -> list[str]:
    """The credential files the task declares, checked, into ``input/credentials/`` (ALE's
    place; ``credentials.py``); their names, for the record."""
    held = plan.credentials.prepare(plan.task.card)
    if held is None:
        return []
    sandbox.mkdir(sandbox.path("input"))
    sandbox.stage(sandbox.path("input"), {STAGED_AS: held})
    return sorted(p.name for p in held.iterdir())


def _run_agent(
    plan: TrialPlan, sandbox: Sandbox, attempt: TaskAttempt, phases: dict[str, float], result: TrialResult
) -> AgentResult:
    context = AgentContext(
        instruction=attempt.instruction,
        timeout_s=plan.timeout_s,
        workdir=sandbox.workdir,
        task_name=str(plan.task.name),
        variant=plan.variant,
        model=plan.agent.model,
        solution=plan.task.data(plan.variant).solution if plan.agent.uses_solution else None,
    )
    with _phase(plan, phases, "agent"):
        try:
            return plan.agent.run(sandbox, context)
        except BaseException as exc:
            # a run that raised keeps its books: the usage it spent, its log and trajectory
            partial = plan.agent.partial_result(plan.test_id)
            if partial is not None:
                _absorb_agent(result, partial)
                _save_run(plan, result, partial, attempt.instruction)
            if isinstance(exc, AleError) or not isinstance(exc, Exception):
                raise
            raise InfrastructureError(
                f"harness {plan.agent.label!r} crashed: {type(exc).__name__}: {exc}"
            ) from exc


def _absorb_agent(result: TrialResult, agent: AgentResult) -> None:
    result.timed_out = agent.timed_out
    result.oom = agent.oom
    result.agent_exit_code = agent.exit_code
    result.agent_version = agent.version
    result.usage.add(agent.usage)  # summed over attempts: a retried attempt's spend was real
    result.extra_properties.update(agent.properties)
    if agent.budget_exceeded:
        result.budget_exceeded = True
        result.warnings.append(f"budget exceeded, agent stopped: {agent.budget_exceeded}")
    if agent.exit_code not in (0, None):
        result.warnings.append(f"agent exited with code {agent.exit_code}")


def _agent_fault(result: TrialResult, exc: AgentFault, threshold: float) -> None:
    """The agent broke a rule of the trial: graded 0, counted like any failure."""
    result.score = 0.0
    result.explanation = str(exc)
    result.status = _status(result, threshold)
    result.error = result.error_kind = None


def _collect(sandbox: Sandbox, dest: Path, result: TrialResult) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        report = sandbox.collect(sandbox.path("output"), dest)
    except FileNotFoundError:
        result.warnings.append("the agent removed output/; graded as empty")
        return dest
    for refusal in report.refused:
        result.warnings.append(f"output/{refusal}")
    return dest


def save_run(folder: Path, agent: Agent, run: AgentResult, instruction: str, session_id: str) -> list[str]:
    """Write what ``agent``'s ``run`` returned into ``folder`` (a trial's, or a fixture
    test's): ``agent.log``, the gateway's books (``gateway.json``, ``gateway.jsonl``) and
    the trajectory, converted only now (``Agent.trajectory``). A converter that raises
    leaves the bare record and a warning (returned), never an error or a retry."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agent.log").write_text(run.log, encoding="utf-8", errors="replace")
    if run.gateway is not None:
        _write_books(folder, "gateway", run.gateway, run.gateway_events)
    problems: list[str] = []
    try:
        trajectory = agent.trajectory(run, instruction, session_id)
    except Exception as exc:
        trajectory = None
        problems.append(
            f"trajectory: {agent.label}'s converter raised {type(exc).__name__}: {exc}; "
            "trajectory.json holds the bare record of the run"
        )
    if trajectory is None:
        bare = process_trajectory(session_id, agent.label, run.version, instruction, run.log, run.exit_code)
        trajectory = bare.model_dump(exclude_none=True)
    _write_trajectory(folder, trajectory)
    return problems


def _write_books(folder: Path, name: str, summary: dict[str, Any], events: list[dict[str, Any]]) -> None:
    """The gateway's books on one role's trial: ``NAME.json`` (totals), ``NAME.jsonl`` (requests)."""
    _write_jsonl(folder / f"{name}.jsonl", events)
    (folder / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")


def _write_jsonl(path: Path, entries: list[dict[str, Any]]) -> None:
    lines = [json.dumps(entry, sort_keys=True) for entry in entries]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")


def _save_run(plan: TrialPlan, result: TrialResult, run: AgentResult, instruction: str) -> None:
    result.warnings += save_run(plan.artifacts, plan.agent, run, instruction, plan.test_id)


def _status(result: TrialResult, threshold: float) -> str:
    assert result.score is not None
    if result.budget_exceeded:
        return "budget"  # over its budget, a trial never passes, whatever it scored
    if passes(result.score, threshold):
        return "passed"
    if result.timed_out:
        return "timeout"
    return "oom" if result.oom else "failed"


@contextmanager
def _task_warnings(result: TrialResult) -> Iterator[None]:
    """What task code left behind (``TaskCodeWarning``: programs it started, killed) goes
    into the trial's record too, and on to pytest's warnings summary as before."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TaskCodeWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, TaskCodeWarning):
                    result.warnings.append(str(w.message))
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


@contextmanager
def _phase(plan: TrialPlan, phases: dict[str, float], name: str) -> Iterator[None]:
    if plan.on_phase:
        plan.on_phase(name)
    started = time.monotonic()
    try:
        yield
    finally:
        phases[name] = round(phases.get(name, 0.0) + time.monotonic() - started, 4)
