"""The real ``claude``, ``codex`` and ``gemini`` CLIs solving bundled tasks from ``tasks/``
through the gateway's scripted model, on the local sandbox and on docker (the harness
image, where the CLIs are pre-installed).

The scripted model plays what a model would do: it writes the task's solution as a script
and runs it with the harness's own shell tool, then answers. The score comes from the
task's own grader; ``deposition-redaction`` generates its input anew each run, so only a
script actually run in the sandbox on this run's input can score 1.0.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pytest_ale.trajectory import validate_trajectory

from .test_harness import AGENTS, junit_properties, run

REPO = Path(__file__).resolve().parents[1]
BUNDLED = ["legal/deposition-redaction", "engineering/beam-deflection-check"]
HARNESS_IMAGE = os.environ.get("ALE_HARNESS_IMAGE", "pytest-ale/harness:latest")


def solve_command(task: str) -> str:
    """One shell line that writes the task's solution script and runs it in the workspace."""
    script = (REPO / "tasks" / task / "solution" / "solve.py").read_bytes()
    name = task.rsplit("/", 1)[1]
    encoded = base64.b64encode(script).decode()
    return (
        f"printf %s {encoded} | base64 -d > /tmp/solve-{name}.py && python3 /tmp/solve-{name}.py && ls output"
    )


def write_bundled(root: Path) -> Path:
    (root / "pytest.ini").write_text("[pytest]\n")
    turns = {}
    for task in BUNDLED:
        shutil.copytree(REPO / "tasks" / task, root / "tasks" / task)
        name = task.rsplit("/", 1)[1]
        turns[name] = [
            {"shell": solve_command(task), "say": "I will write a script for this and run it."},
            {"text": "Done: the results are in output/."},
        ]
    path = root / "script.yaml"
    path.write_text(yaml.safe_dump({"tasks": turns}))
    return path


@pytest.fixture(scope="module")
def harness_image() -> str | None:
    """Why the docker runs cannot happen here (``None`` when they can); asked once a module."""
    from pytest_ale.errors import InfrastructureError
    from pytest_ale.providers.docker.client import connect

    try:
        client = connect(timeout=30)
    except InfrastructureError as exc:
        return str(exc)
    try:
        client.api.inspect_image(HARNESS_IMAGE)
    except Exception as exc:
        return f"{HARNESS_IMAGE} missing ({exc}); build it: pytest-ale-image build --harnesses"
    finally:
        client.close()
    return None


def provider_args(provider: str, docker_problem: str | None) -> list[str]:
    if provider == "local":
        if shutil.which("bwrap") is None:
            pytest.skip("bubblewrap is not installed (bash .ci/harness.sh installs it)")
        return []
    if docker_problem:
        if os.environ.get("ALE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"ALE_REQUIRE_DOCKER=1 but {docker_problem}")
        pytest.skip(docker_problem)
    return ["--ale-provider=docker-harness", f"--ale-provider-opt=image={HARNESS_IMAGE}"]


@pytest.mark.parametrize("provider", ["local", "docker"])
@pytest.mark.parametrize("agent", list(AGENTS))
def test_cli_solves_bundled_tasks(
    pytester: pytest.Pytester, agent: str, provider: str, harness_image: str | None
) -> None:
    if shutil.which(AGENTS[agent][0]) is None and provider == "local":
        pytest.skip(f"`{AGENTS[agent][0]}` is not installed (bash .ci/harness.sh installs it)")
    extra = provider_args(provider, harness_image)
    script = write_bundled(pytester.path)
    result = run(pytester, agent, "--ale-scripted-model", str(script), *extra)
    result.assert_outcomes(passed=len(BUNDLED))
    props = junit_properties(pytester)
    assert len(props) == len(BUNDLED)
    for prop in props.values():
        assert prop["ale_score"] == "1.0" and prop["ale_status"] == "passed"
        assert prop["ale_provider"] == ("local" if provider == "local" else "docker-harness")
        assert int(prop["ale_input_tokens"]) > 0 and int(prop["ale_output_tokens"]) > 0
        assert float(prop["ale_cost_usd"]) > 0
    found = {
        path.parent.parent.name: json.loads(path.read_text())
        for path in (pytester.path / "reports" / "runs").glob("*/tasks/*/*/*/trajectory.json")
    }
    assert set(found) == {task.rsplit("/", 1)[1] for task in BUNDLED}
    for name, data in found.items():
        trajectory = validate_trajectory(data)
        assert trajectory.agent.name == agent and trajectory.agent.version not in (None, "unknown")
        calls = [c for s in trajectory.steps for c in s.tool_calls or []]
        assert len(calls) == 1, json.dumps(data, indent=1)[:3000]
        assert f"/tmp/solve-{name}.py" in json.dumps(calls[0].arguments)
        # the tool's observation is the `ls output` the script ended with, in the sandbox
        observed = "\n".join(
            r.get("content") or ""
            for s in data["steps"]
            for r in (s.get("observation") or {}).get("results", [])
        )
        (output,) = (pytester.path / "reports" / "runs").glob(f"*/tasks/*/{name}/*/output")
        written = sorted(p.name for p in output.iterdir())
        assert written and all(file in observed for file in written), (written, observed[:2000])


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (the Docker SDK's export stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buffer = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[override]
        while not self.buffer:
            self.buffer = next(self.chunks, b"")
            if not self.buffer:
                return 0
        size = min(len(target), len(self.buffer))
        target[:size], self.buffer = self.buffer[:size], self.buffer[size:]
        return size


@pytest.mark.parametrize("agent", list(AGENTS))
def test_no_real_key_reaches_a_docker_sandbox(
    pytester: pytest.Pytester, agent: str, harness_image: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adversarial agent on docker: it dumps its environment and greps the container
    for keys; then the kept container's whole filesystem is exported and searched too."""
    import tarfile

    import docker

    from pytest_ale.gateway.fake_upstream import FakeUpstream
    from pytest_ale.providers.docker.client import RUN_LABEL

    from .test_harness import REAL_KEY, _script, write_suite

    extra = provider_args("docker", harness_image)
    write_suite(pytester.path, ["leak"])
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(var, REAL_KEY)  # the host really has it
    upstream = FakeUpstream(script=_script(), key=REAL_KEY).start()
    run_id = f"leak-{agent}-{os.getpid()}"
    try:
        result = run(
            pytester, agent, *extra, f"--ale-upstream-{AGENTS[agent][1]}", upstream.url,
            "--ale-keep", f"--ale-run-id={run_id}",
        )  # fmt: skip
    finally:
        upstream.stop()
    result.assert_outcomes(passed=1)
    assert upstream.requests >= 2 and upstream.rejected_keys == []  # it worked, with the key swapped in
    client = docker.from_env()
    (container,) = client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    try:
        stream = ChunkReader(container.export(chunk_size=1 << 20))
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # read as exported: no copy on disk
            leaks = [m.name for m in tar if m.isfile() and REAL_KEY.encode() in tar.extractfile(m).read()]
        assert leaks == [], f"the real key is in the container at {leaks}"
        (output,) = (pytester.path / "reports" / "runs").glob("*/tasks/demo/leak/*/output")
        assert "ale-trial-" in (output / "env.txt").read_text()  # a trial token, nothing more
        found = [
            str(p) for p in pytester.path.rglob("*") if p.is_file() and REAL_KEY.encode() in p.read_bytes()
        ]
        assert found == [], f"the real key leaked into {found}"
    finally:
        container.remove(force=True)
        client.close()
