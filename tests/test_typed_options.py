"""Typed options: a misspelt or wrong provider / agent option stops the run at configure
time (key, origin, valid keys, near miss; a usage error, no sandbox made); valid ones work;
every built-in preset validates; a GPU task on gcp gets its accelerator."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_ale import presets, registry
from pytest_ale.errors import ConfigError
from pytest_ale.sandbox import SandboxSpec

from .conftest import results


def _stopped(run: pytest.RunResult, sandboxes: Path) -> str:
    """The run stopped as a usage error before any trial, no sandbox made: its message."""
    assert run.ret == pytest.ExitCode.USAGE_ERROR, run.stdout.str() + run.stderr.str()
    assert not (sandboxes / "pytest-ale").exists()
    assert not list((sandboxes.parent / "reports").glob("runs/*/results.jsonl"))
    return run.stderr.str()


def test_a_misspelt_provider_option_stops_the_run(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    sandboxes = pytester.path / "sandboxes"
    run = pytester.runpytest(
        "tasks", "--ale-provider-opt", "isolaton=none", f"--ale-provider-opt=root={sandboxes}"
    )
    err = _stopped(run, sandboxes)
    assert (
        "provider 'local': Unknown option 'isolaton' (from --ale-provider-opt), did you mean isolation?"
        in err
    )
    assert "Valid options: isolation, keep, max_output_files, max_output_mb, max_processes, network," in err


def test_a_wrong_value_type_stops_the_run(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    sandboxes = pytester.path / "sandboxes"
    run = pytester.runpytest(
        "tasks", "--ale-provider-opt=max_processes=lots", f"--ale-provider-opt=root={sandboxes}"
    )
    err = _stopped(run, sandboxes)
    assert "Option 'max_processes' = 'lots' (from --ale-provider-opt): Input should be a valid integer" in err
    run = pytester.runpytest(
        "tasks", "--ale-provider-opt=isolation=bwarp", f"--ale-provider-opt=root={sandboxes}"
    )
    assert "Input should be 'auto', 'bwrap' or 'none', did you mean bwrap?" in _stopped(run, sandboxes)


def test_a_misspelt_key_in_an_agent_preset_names_the_file(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    preset = pytester.path / "agents" / "shouty.yaml"
    preset.parent.mkdir()
    preset.write_text("kind: command\ncommand: tr a-z A-Z < input/data.txt > output/data.txt\ninstal: true\n")
    sandboxes = pytester.path / "sandboxes"
    run = pytester.runpytest("tasks", "--ale-agent=shouty", f"--ale-provider-opt=root={sandboxes}")
    err = _stopped(run, sandboxes)
    assert f"agent 'shouty' (command): Unknown option 'instal' (from {preset}), did you mean install?" in err
    assert "Valid options: command, env, install, install_timeout, model, version." in err


def test_agent_opt_overrides_the_preset_for_every_agent(
    pytester: pytest.Pytester, make_task, command_agent
) -> None:
    make_task("upper")
    command_agent("shouty", "tr a-z A-Z < input/data.txt > output/data.txt")
    preset = pytester.path / "agents" / "shouty.yaml"
    preset.write_text(preset.read_text() + "version: '1.0'\n")
    sandboxes = pytester.path / "sandboxes"
    common = ["tasks", "--ale-provider-opt=isolation=none", f"--ale-provider-opt=root={sandboxes}"]
    run = pytester.runpytest(*common, "--ale-agent=shouty", "--ale-agent-opt=version=2.5")
    run.assert_outcomes(passed=1)
    assert [row["agent_version"] for row in results(pytester)] == ["2.5"]  # a number in YAML, text here
    for done in (pytester.path / "reports", sandboxes):
        shutil.rmtree(done)
    # every agent of the matrix gets it: an option the oracle does not take stops the run
    run = pytester.runpytest(
        *common, "--ale-agent=shouty", "--ale-agent=oracle", "--ale-agent-opt=install_timeout=5"
    )
    err = _stopped(run, sandboxes)
    assert "agent 'oracle': Unknown option 'install_timeout' (from --ale-agent-opt)" in err
    run = pytester.runpytest(*common, "--ale-agent-opt=version")
    assert "--ale-agent-opt takes KEY=VALUE, not 'version'" in _stopped(run, sandboxes)
    run = pytester.runpytest(*common, "--ale-agent-opt=args=[--fast")
    assert "--ale-agent-opt 'args=[--fast': the value is not valid YAML" in _stopped(run, sandboxes)


def test_options_from_the_ini_file_are_checked_too(pytester: pytest.Pytester, make_task) -> None:
    make_task("upper")
    pytester.makeini("[pytest]\nale_provider_opt = isolation=none\n    netwrok=true\n")
    run = pytester.runpytest("tasks")
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    run.stderr.fnmatch_lines(
        ["*Unknown option 'netwrok' (from the ini key ale_provider_opt), did you mean network?*"]
    )


def _builtin_presets() -> Iterator[tuple[str, str]]:
    for what in ("agents", "providers"):
        for path in sorted((presets.BUILTIN / what).glob("*.yaml")):
            yield what, path.stem


@pytest.mark.parametrize(("what", "name"), list(_builtin_presets()))
def test_every_builtin_preset_validates(what: str, name: str, tmp_path: Path) -> None:
    preset = presets.resolve(name, what, tmp_path)
    group = registry.AGENT_GROUP if what == "agents" else registry.PROVIDER_GROUP
    try:
        cls = registry.load(group, preset.kind)
    except ConfigError as exc:  # an optional SDK that is not installed
        pytest.skip(str(exc))
    options = preset.validate(cls)
    assert isinstance(options, cls.Options)
    with pytest.raises(ConfigError, match=re.escape(f"Unknown option 'bogus' (from {preset.source})")):
        presets.Preset(preset.name, preset.kind, {**preset.options, "bogus": 1}, preset.source).validate(cls)


def test_supports_reads_capabilities_and_options() -> None:
    from pytest_ale.providers.local import LocalProvider

    gpu, windows = (
        SandboxSpec(run_id="", trial_id="", gpu=True),
        SandboxSpec(run_id="", trial_id="", os="windows"),
    )
    assert LocalProvider.supports(gpu, {}) == "provider 'local' has no GPU here"
    assert LocalProvider.supports(windows, {}) == "provider 'local' cannot run windows tasks"
    static = pytest.importorskip("pytest_ale.providers.static").StaticProvider
    machines = {"agent_user": "ale-agent", "os": "windows"}
    assert static.supports(windows, machines) is None
    assert "set gpu: true in its preset" in (
        static.supports(SandboxSpec(run_id="", trial_id="", os="windows", gpu=True), machines) or ""
    )
    assert (
        static.supports(
            SandboxSpec(run_id="", trial_id="", os="windows", gpu=True), {**machines, "gpu": "yes"}
        )
        is None
    )


def test_a_gpu_task_on_gcp_gets_an_accelerator() -> None:
    pytest.importorskip("google.cloud.compute_v1")
    pytest.importorskip("asyncssh")
    from tests.conformance.cases import gcp_options
    from tests.conformance.env import Env
    from tests.conformance.sshd import available

    if available() is not None:
        pytest.skip(str(available()))
    from pytest_ale.providers.gcp import GcpProvider

    assert GcpProvider.supports(SandboxSpec(run_id="", trial_id="", gpu=True), {"project": "p"}) is None
    env = Env()
    try:
        provider = GcpProvider(gcp_options(env))
        sandbox = provider.acquire(SandboxSpec(run_id="gpu-run", trial_id="t::gpu", gpu=True))
        try:
            instance = provider.held[sandbox]
            data = env.gce.instances[(instance.where, instance.name)]
            assert data["machineType"].endswith("/machineTypes/n1-standard-4")
            assert data["guestAccelerators"] == [
                {
                    "acceleratorType": "zones/fake-zone-a/acceleratorTypes/nvidia-tesla-t4",
                    "acceleratorCount": 1,
                }
            ]
            assert data["scheduling"]["onHostMaintenance"] == "TERMINATE"
        finally:
            provider.release(sandbox)
        plain = provider.acquire(SandboxSpec(run_id="cpu-run", trial_id="t::cpu"))
        try:
            instance = provider.held[plain]
            data = env.gce.instances[(instance.where, instance.name)]
            assert data["machineType"].endswith("/machineTypes/e2-standard-4")
            assert "guestAccelerators" not in data
        finally:
            provider.release(plain)
        provider.close()
    finally:
        env.close()
