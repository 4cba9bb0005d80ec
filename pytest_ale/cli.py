"""The ``pytest-ale`` command: what a run needs that is not a pytest option.

    pytest-ale deps TREE [--group NAME] [--torch cpu|default|skip] [--torch-index URL|DIR] [--install]

``deps`` prints the pip command(s) that install the grader dependencies a task tree
declares (``deps.py`` says where they are read from) into this Python; ``--install`` runs
them (``sys.executable -m pip``). Errors go to stderr with exit status 2; a failed pip
returns pip's own status. The image builder has its own command, ``pytest-ale-image``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from . import deps
from .errors import AleError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytest-ale", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser(
        "deps",
        help="print (or --install) the pip command for a task tree's grader dependencies",
        description="The grader dependencies a task tree's pyproject.toml declares (the first one "
        "found from TREE upward), as a pip command for this Python.",
    )
    one.add_argument("tree", type=Path, metavar="TREE", help="a task tree, or a folder inside one")
    one.add_argument("--install", action="store_true", help="run the command (sys.executable -m pip)")
    one.add_argument(
        "--group",
        action="append",
        metavar="NAME",
        help="only this optional or dependency group beside the dependencies (repeatable; default: all)",
    )
    one.add_argument(
        "--torch",
        choices=deps.TORCH_CHOICES,
        help="the build of torch (torchvision, torchaudio) a tree asking for it gets: cpu (from "
        "--torch-index), default (the default index's: on Linux x86_64 PyPI's is a CUDA build), skip",
    )
    one.add_argument(
        "--torch-index",
        metavar="URL|DIR",
        help="with --torch=cpu: a CPU wheel index URL, or a folder of +cpu wheels",
    )
    return parser


def run_deps(args: argparse.Namespace) -> int:
    declared = deps.read_declared(args.tree)
    reqs = deps.requirements(declared, args.group)
    commands = deps.pip_commands(
        reqs, torch=args.torch, torch_index=args.torch_index, where=declared.pyproject
    )
    notes = [deps.python_note(declared)]
    if args.torch == "skip":
        left = [str(r) for r in reqs if r.name.lower() in deps.TORCH_NAMES]
        notes.append(f"note: --torch=skip leaves out {', '.join(left)}" if left else None)
    for note in filter(None, notes):
        print(note, file=sys.stderr)
    if not commands:
        print(f"# {declared.pyproject} declares no grader dependencies to install", file=sys.stderr)
        return 0
    print(deps.render(commands))
    if not args.install:
        return 0
    for command in commands:
        done = subprocess.run(command, check=False)
        if done.returncode != 0:
            print(f"pytest-ale deps: pip failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return run_deps(args)
    except AleError as exc:
        print(f"pytest-ale {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
