"""Chaos rounds on a real Docker engine, counted: what signals at random moments leave.

Each round is ``tests/adversarial/chaos.py``'s: an ``-n 2`` docker run (a ``command`` agent
with short sleeps, 6 trials, one task always failing) gets SIGINT, SIGTERM or SIGKILL,
sometimes twice, at a random moment, on the controller or on one worker; then the checks
(processes and containers left, torn results.jsonl lines, one sweep, ``--ale-resume`` to
the end with exit status 1). Rounds cycle through every target x signal.

    python bench/bench_chaos.py [--rounds 36] [--seed N] [--write]

``--write`` replaces the "Chaos" section of bench/RESULTS.md (appends it the first time).
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_ale.providers.docker.client import connect
from tests.adversarial.chaos import SIGNALS, SLOW_S, TARGETS, Round, build_project, run_round

RESULTS = Path(__file__).parent / "RESULTS.md"
HEADING = "## Chaos: signals at random moments of an `-n 2` docker run"


def bench(rounds: int, seed: int) -> list[Round]:
    client = connect(timeout=30)
    rng = random.Random(seed)
    combos = [(t, s) for t in TARGETS for s in SIGNALS]
    done: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_project(root)
        for i in range(rounds):
            target, signum = combos[i % len(combos)]
            started = time.monotonic()
            rnd = run_round(root, client, rng, target, signum)
            done.append(rnd)
            state = "ok" if rnd.ok else "PROBLEM: " + rnd.problems[0]
            twice = " x2" if rnd.twice else "   "
            ended = " (run had ended)" if rnd.missed else ""
            print(
                f"round {i + 1:3}/{rounds} {target:10} {rnd.signal:7}{twice} at {rnd.delay:4.1f}s{ended}: "
                f"all gone {rnd.stop_s:5.2f}s later, round {time.monotonic() - started:5.1f}s  {state}",
                flush=True,
            )
    return done


def section(rounds: list[Round], seed: int) -> str:
    def count(attr: str) -> int:
        return sum(getattr(r, attr) for r in rounds)

    hit = [r for r in rounds if not r.missed]
    stops = [r.stop_s for r in hit if r.target == "controller" and r.signal != "SIGKILL"]
    orphans = [r.stop_s for r in hit if r.target == "controller" and r.signal == "SIGKILL"]
    worker_stops = [r.stop_s for r in hit if r.target == "worker" and r.signal != "SIGKILL"]
    worker_kills = [r.stop_s for r in hit if r.target == "worker" and r.signal == "SIGKILL"]
    resumes_bad = sum(any("resume" in p or "after the resume" in p for p in r.problems) for r in rounds)
    rows = [
        ("rounds (runs signalled)", f"{len(rounds)} ({len(hit)} hit mid-run)"),
        ("... of which twice (a second SIGINT/SIGTERM while stopping)", str(sum(r.twice for r in hit))),
        ("rounds with any problem", str(sum(not r.ok for r in rounds))),
        (f"runs still going {SLOW_S:.0f} s after the signal", str(sum(r.stop_s > SLOW_S for r in hit))),
        ("processes of the run left after it ended", str(count("leaked_processes"))),
        ("containers of the run left after it ended (before any sweep)", str(count("leaked_containers"))),
        ("containers the one sweep removed", str(count("swept"))),
        ("containers left after the sweep", str(count("left_after_sweep"))),
        ("torn results.jsonl lines", f"{count('torn_lines')} of {count('lines')}"),
        ("`--ale-resume` not completing the run (wrong exit status or results)", str(resumes_bad)),
    ]
    combos = [(t, s.name) for t in TARGETS for s in SIGNALS]
    per = ", ".join(f"{t} {s}: {sum(r.target == t and r.signal == s for r in hit)}" for t, s in combos)
    stop_line = " ".join(
        filter(
            None,
            [
                _timing("Ctrl-C / SIGTERM to the controller: every process of the run gone", stops),
                _timing("SIGKILL of the controller: its workers gone", orphans),
                _timing("SIGINT / SIGTERM to one worker: the run ended", worker_stops),
                _timing("SIGKILL of one worker: the run ended", worker_kills),
            ],
        )
    )
    return "\n".join(
        [
            HEADING,
            "",
            f"`python bench/bench_chaos.py --rounds {len(rounds)} --seed {seed}` on {platform.node()} "
            f"({platform.machine()}, Python {platform.python_version()}), {time.strftime('%Y-%m-%d')}: "
            f"each round an `-n 2` run of 6 trials on `--ale-provider=docker` (a `command` agent sleeping "
            f"0.5-1 s; one task always fails), signalled at a random moment, then checked, swept once and "
            f"resumed to the end (`tests/adversarial/chaos.py`). Rounds that hit mid-run: {per}.",
            "",
            "| what | count |",
            "| --- | ---: |",
            *(f"| {what} | {n} |" for what, n in rows),
            "",
            stop_line,
            "",
            "A worker signalled before its own handlers are installed (its first half second) "
            "dies; xdist starts another and the run goes on to its end, so those rounds take "
            "the length of a whole run (about 6 s here). A worker SIGKILLed mid-trial is "
            "replaced; its sandbox is swept by the controller at once.",
            "",
            "Target: zero of every leak, torn line and failed resume.",
            "",
        ]
    )


def _timing(what: str, seconds: list[float]) -> str:
    if not seconds:
        return ""
    median, most = statistics.median(seconds), max(seconds)
    return f"{what} {median:.2f} s after the signal (median; max {most:.2f} s, {len(seconds)} rounds)."


def write(text: str) -> None:
    current = RESULTS.read_text()
    start = current.find(HEADING)
    if start < 0:
        RESULTS.write_text(current.rstrip("\n") + "\n\n" + text)
        return
    end = current.find("\n## ", start + len(HEADING))
    rest = current[end + 1 :] if end >= 0 else ""
    RESULTS.write_text(current[:start] + text + ("\n" + rest if rest else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=36)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    rounds = bench(args.rounds, seed)
    text = section(rounds, seed)
    print("\n" + text)
    for rnd in rounds:
        for problem in rnd.problems:
            print(f"{rnd.run_id} {rnd.target} {rnd.signal}: {problem}")
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
