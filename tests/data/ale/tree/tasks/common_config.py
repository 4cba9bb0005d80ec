"""Base task configuration shared by the test tasks (ALE shape: Windows paths by default).

Values come from the environment once, at import, exactly like ALE's own helper.
"""

import os
from dataclasses import dataclass


@dataclass
class GeneralTaskConfig:
    REMOTE_OUTPUT_DIR: str = os.environ.get("REMOTE_OUTPUT_DIR", "output")
    REMOTE_ROOT_DIR: str = os.environ.get("REMOTE_ROOT_DIR", "E:\\agenthle")
    DOMAIN_NAME: str = ""
    TASK_NAME: str = ""
    VARIANT_NAME: str = "base"
    OS_TYPE: str = os.environ.get("OS_TYPE", "windows")
    REQUIRES_TASK_DATA: bool = True

    @property
    def task_description(self) -> str:
        return ""

    def join(self, *parts: str) -> str:
        return "\\".join(parts)

    @property
    def task_dir(self) -> str:
        return self.join(self.REMOTE_ROOT_DIR, self.DOMAIN_NAME, self.TASK_NAME, self.VARIANT_NAME)

    @property
    def input_dir(self) -> str:
        return self.join(self.task_dir, "input")

    @property
    def software_dir(self) -> str:
        return self.join(self.task_dir, "software")

    @property
    def reference_dir(self) -> str:
        return self.join(self.task_dir, "reference")

    @property
    def remote_output_dir(self) -> str:
        return self.join(self.task_dir, self.REMOTE_OUTPUT_DIR)

    def to_metadata(self) -> dict:
        return {
            "domain_name": self.DOMAIN_NAME,
            "task_name": self.TASK_NAME,
            "variant_name": self.VARIANT_NAME,
            "requires_task_data": self.REQUIRES_TASK_DATA,
            "task_dir": self.task_dir,
            "input_dir": self.input_dir,
            "software_dir": self.software_dir,
            "reference_dir": self.reference_dir,
            "remote_output_dir": self.remote_output_dir,
        }
