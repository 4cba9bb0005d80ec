"""Linux flavour of the shared task configuration: POSIX paths under the data root."""

import os
from dataclasses import dataclass

from tasks.common_config import GeneralTaskConfig

DATA_ROOT = os.environ.get("REMOTE_ROOT_DIR", "/media/user/data/agenthle")


@dataclass
class LinuxTaskConfig(GeneralTaskConfig):
    REMOTE_ROOT_DIR: str = DATA_ROOT
    OS_TYPE: str = "linux"

    def join(self, *parts: str) -> str:
        return "/".join(parts)
