"""An ALE task whose grader imports a package the host does not have."""

import cua_bench as cb
import ale_deps_missing_judge  # noqa: F401  (a package the tree does not declare)


@cb.tasks_config(split="train")
def load():
    return [cb.Task(description="Do nothing.", metadata={"requires_task_data": False}, computer={})]


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session):
    return [1.0]
