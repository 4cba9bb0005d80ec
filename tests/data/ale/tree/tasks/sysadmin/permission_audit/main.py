"""permission_audit: scores file permission bits and a per-run token read back from the
sandbox (load() runs again before evaluate(), so its fresh token differs)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import cua_bench as cb

from tasks.common_setup import BaseTaskSetup
from tasks.linux_runtime import LinuxTaskConfig


@dataclass
class PermissionAuditConfig(LinuxTaskConfig):
    DOMAIN_NAME: str = "sysadmin"
    TASK_NAME: str = "permission_audit"

    @property
    def task_description(self) -> str:
        return (
            f"Write {self.remote_output_dir}/deploy.sh, mode 755, that prints the token found in "
            f"{self.input_dir}/run_token.txt; and {self.remote_output_dir}/private.key, mode 600."
        )


class TokenSetup(BaseTaskSetup):
    async def setup(self, task_cfg, session) -> None:
        meta = task_cfg.metadata
        await session.write_file(f"{meta['input_dir']}/run_token.txt", meta["run_token"])


_setup = TokenSetup()


@cb.tasks_config(split="train")
def load():
    cfg = PermissionAuditConfig()
    meta = cfg.to_metadata()
    meta["run_token"] = secrets.token_hex(8)  # per run: differs between setup and grading
    return [cb.Task(description=cfg.task_description, metadata=meta, computer={"provider": "computer"})]


@cb.setup_task(split="train")
async def start(task_cfg, session: cb.DesktopSession):
    await _setup(task_cfg, session)


async def _mode(session, path: str) -> str:
    result = await session.run_command(f'stat -c %a "{path}"', check=False)
    return result.stdout.strip() if result.returncode == 0 else "missing"


@cb.evaluate_task(split="train")
async def evaluate(task_cfg, session: cb.DesktopSession) -> dict:
    meta = task_cfg.metadata
    token = (await session.read_file(f"{meta['input_dir']}/run_token.txt")).strip()
    reloaded = "load() ran again" if token != meta["run_token"] else "load() did not run again"
    deploy, key = f"{meta['remote_output_dir']}/deploy.sh", f"{meta['remote_output_dir']}/private.key"
    checks = {"deploy.sh 755": await _mode(session, deploy) == "755", "private.key 600": await _mode(session, key) == "600"}
    if checks["deploy.sh 755"]:
        ran = await session.run_command(f'"{deploy}"', check=False)
        checks["prints token"] = ran.get("stdout", "").strip() == token
    else:
        checks["prints token"] = False
    failed = [name for name, ok in checks.items() if not ok]
    return {
        "score": sum(checks.values()) / len(checks),
        "explanation": f"{reloaded}; failed: {', '.join(failed) or 'none'}",
    }
