"""A third-party provider runs the shipped conformance suite with one command line.

``tests/third_party/ale_provider_example`` is a distribution of its own (installed by
``.ci/run``), registering ``example`` and ``example-broken`` under the
``pytest_ale.providers`` entry-point group, built on the public interface only. In a fresh
folder, outside this repository: ``pytest -p pytest_ale.testing --ale-conformance=example``
passes every check; the broken one (its ``exec`` ignores ``cwd``) fails, naming the checks
and what was wrong; a name nobody registered is a usage error listing those installed; the
fixtures without a target say how to name one.
"""

from __future__ import annotations

import os
import tempfile
from importlib.metadata import entry_points

import pytest

from pytest_ale.testing import suite

EXAMPLE = os.path.join(os.path.dirname(__file__), "third_party", "ale_provider_example")
INSTALLED = {ep.name for ep in entry_points(group="pytest_ale.providers")}

pytestmark = pytest.mark.skipif(
    "example" not in INSTALLED,
    reason=f"the example provider is not installed: pip install -e {EXAMPLE} (.ci/run does)",
)

CHECKS = sorted(name for name in dir(suite) if name.startswith("test_"))


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "pytest_ale.testing", "-p", "no:cacheprovider", *args, timeout=900
    )


def test_the_example_provider_passes_every_shipped_check(pytester: pytest.Pytester) -> None:
    root = tempfile.mkdtemp(prefix="ale-example-root-")  # under /tmp: the agents' uids reach it
    result = _run(pytester, f"--ale-conformance=example,root={root},max_output_files=500", "-v")
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert set(outcomes) == {"passed"}, outcomes
    ran = {line.split("::")[1].split()[0].split("[")[0] for line in result.outlines if "suite.py::" in line}
    assert ran == set(CHECKS)  # every check the built-ins pass, collected from the package
    assert os.path.isdir(os.path.join(root, "uids")), "the options given did not reach the provider"


def test_a_broken_provider_fails_with_a_readable_message(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--ale-conformance=example-broken")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*def test_exec_env_cwd_and_stdin(*",
            "E*AssertionError: assert '/tmp/ale-exa*/workspace' == '/tmp/ale-exa*/sub dir'",
            "E*- /tmp/ale-example/sbx-*/workspace/sub dir",
            "E*+ /tmp/ale-example/sbx-*/workspace",
            "FAILED suite.py::test_exec_env_cwd_and_stdin - AssertionError*",
            "FAILED suite.py::test_exec_relative_cwd_is_under_the_workspace*",
        ],
        consecutive=False,
    )
    assert result.parseoutcomes()["passed"] >= len(CHECKS) - 5


def test_an_unknown_provider_is_a_usage_error_naming_those_installed(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--ale-conformance=no-such-provider,x=1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no provider named 'no-such-provider'*example*"])


def test_without_a_target_the_fixtures_say_how_to_name_one(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_it(ale_conformance_sandbox):\n    pass\n")
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*no provider to check: pass --ale-conformance=NAME*ale_conformance_target*"]
    )
