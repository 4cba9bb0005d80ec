"""A half-done agent for tests/test_bundled_suite.py, run inside the sandbox.

It finds which bundled task it is working on from the instruction file's SHA-256 (the test
passes ``{digest: "<domain>/<task>"}`` in ``ALE_PARTIAL_MAP``), then either runs that task's
``partial.py`` in the workspace (tasks whose input is generated per run) or copies the
folder's half-done files into ``output/``.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    instruction = Path(sys.argv[1]).read_text(encoding="utf-8").strip()
    digest = hashlib.sha256(instruction.encode()).hexdigest()
    task = json.loads(os.environ["ALE_PARTIAL_MAP"]).get(digest)
    if task is None:
        print(f"apply.py: no half-done output for instruction {digest[:12]}", file=sys.stderr)
        return 2
    source = HERE / task
    if (source / "partial.py").is_file():
        return subprocess.run([sys.executable, str(source / "partial.py")], check=False).returncode
    shutil.copytree(source, "output", dirs_exist_ok=True)
    print(f"apply.py: copied the half-done output of {task}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
