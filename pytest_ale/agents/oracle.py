"""``oracle``: runs the task's own solution, proving the task solvable and the grader right.

The solution is ``solution/solve.sh`` (run with bash) or ``solution/solve.py`` (run with
python3), staged into the sandbox's scratch folder and run from the workspace.
"""

from __future__ import annotations

from ..errors import TaskDefinitionError
from ..sandbox import Sandbox
from .base import Agent, AgentContext, AgentResult, run_script

ENTRYPOINTS = (("solve.sh", "bash"), ("solve.py", "python3"))


class OracleAgent(Agent):
    name = "oracle"
    uses_solution = True

    def run(self, sandbox: Sandbox, context: AgentContext) -> AgentResult:
        solution = context.solution
        found = solution and next(((f, i) for f, i in ENTRYPOINTS if (solution / f).is_file()), None)
        if not solution or not found:
            raise TaskDefinitionError(
                f"{context.task_name}: no solution/solve.sh or solution/solve.py, so the "
                "oracle cannot run this task; add one that produces the expected output/"
            )
        entry, interpreter = found
        target = f"{sandbox.scratch.rstrip('/')}/ale-solution"
        sandbox.stage(sandbox.scratch, {"ale-solution": solution})
        return run_script(
            sandbox,
            context,
            [interpreter, f"{target}/{entry}"],
            env={"SOLUTION_DIR": target, "ALE_WORKDIR": context.workdir},
            version="builtin",
        )
