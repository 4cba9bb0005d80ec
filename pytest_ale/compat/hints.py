"""What to fix when an ALE task's ``start()`` (its ``@cb.setup_task``) raises.

Most such failures are not the task's code: ``start()`` checks that the variant's data was
staged and that the tools its grader needs are in the sandbox, and raises when they are
not. The hint names that cause (the data folder it was staged from, or the missing tool)
and blames the task's code only when nothing points elsewhere. (A Python package the
host lacks is worded by ``taskguard``, before this.)
"""

from __future__ import annotations

import re

#: a program, module or tool the task needs is not there
_TOOL = re.compile(
    r"command not found|return code 127|not found in path|"
    r"missing required .*tools?|\btools? (?:is |are )?(?:missing|not (?:found|installed))|"
    r"not installed|executable",
    re.IGNORECASE,
)
#: a file or folder the task expects is not there
_DATA = re.compile(r"no such file|not found|does not exist|missing|no file at", re.IGNORECASE)


def setup_hint(exc: BaseException, data_where: str | None) -> str:
    """The fix for ``exc`` raised by ``start()``; ``data_where`` is where the variant's
    data came from on the host (``None`` without ``--ale-data``)."""
    text = f"{type(exc).__name__}: {exc}"
    if _TOOL.search(text):
        return (
            "a tool the task needs is missing in the sandbox: run it on a provider or image "
            "that has it (the task's setup checks for it; its code is not at fault)"
        )
    if isinstance(exc, FileNotFoundError) or _DATA.search(text):
        if data_where is None:
            return "the task's data is missing: pass --ale-data DIR holding <domain>/<task>/<variant>/"
        return (
            f"the task's data is missing or incomplete: it was staged from {data_where}; "
            "check that folder holds what the task expects (input/, software/)"
        )
    return "fix the task's @cb.setup_task function"
