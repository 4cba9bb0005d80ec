"""Chaos on a real Docker engine: SIGINT, SIGTERM and SIGKILL, once or twice, at random
moments, to the controller or to one worker of an ``-n 2`` run. After each: nothing of the
run still runs, no container is left, results.jsonl is whole, a sweep leaves nothing, and
``--ale-resume`` completes the run with the right exit status (see ``chaos.py``).

The moments come from ``ALE_CHAOS_SEED`` (printed on failure) when set, else a fresh seed;
``bench/bench_chaos.py`` runs many more rounds and counts.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
from pathlib import Path

import pytest

from ..test_docker_provider import docker_client_or_skip
from .chaos import SIGNALS, TARGETS, build_project, run_round


@pytest.fixture(scope="module")
def client():
    return docker_client_or_skip()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chaos")
    build_project(root)
    return root


SEED = int(os.environ.get("ALE_CHAOS_SEED") or secrets.randbelow(10**6))


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
@pytest.mark.parametrize("target", TARGETS)
def test_a_signal_at_a_random_moment_leaves_nothing_and_resume_completes_the_run(
    client, project: Path, target: str, signum: signal.Signals
) -> None:
    seed = SEED * 10 + TARGETS.index(target) * 3 + SIGNALS.index(signum)
    rnd = run_round(project, client, random.Random(seed), target, signum)
    where = f"seed {seed} (ALE_CHAOS_SEED={SEED}): {rnd.signal} to the {target} after {rnd.delay:.2f} s"
    assert rnd.ok, where + ("" if not rnd.twice else ", twice") + "\n" + "\n".join(rnd.problems)
    if not rnd.missed and signum != signal.SIGKILL and target == "controller":
        assert rnd.stop_s < 30, f"{where}: the run took {rnd.stop_s} s to stop"
