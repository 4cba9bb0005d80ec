"""Task credentials on purpose: the licence files a task declares, and nothing else.

A licensed ALE task declares ``requiredCredentials`` in its card (``[{"type":
"matlab_license", "file": "license.lic"}]``); ALE copies each file from the operator's
folder into ``input/credentials/`` of the sandbox. pytest-ale does the same only when the
run names that folder (``--ale-credentials DIR``, files named as the task declares):

- without the option, or with a declared file missing from it, such a task is skipped
  with the reason (a skip, not an error);
- a file is refused (the trial's ``settings`` error) when its name is a model key's
  environment variable (``OPENAI_API_KEY``, ``openai_api_key.txt``) or its content holds
  a key the gateway knows (``gateway/keys.py``): model keys stay on the host, always;
- the declared files alone are copied into a private folder of this process
  (``prepare``), which the trial stages as ``input/credentials/`` and ALE's own setup code
  reads (``AGENTHLE_CREDENTIALS_DIR``, ``env``); the trial record lists their names only
  (``TrialResult.credentials``).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .card import TaskCard
from .errors import ConfigError
from .gateway.keys import KEY_VARS, MIN_SECRET

#: where ALE's ``tasks/common_setup.py`` reads the operator's credential files
ALE_ENV = "AGENTHLE_CREDENTIALS_DIR"
#: the folder under the sandbox's ``input/`` they are staged into (ALE's place)
STAGED_AS = "credentials"
MODEL_KEY_VARS = frozenset(name for names in KEY_VARS.values() for name in names)


class TaskCredentials:
    """The run's credential folder (``--ale-credentials``, or none) and its checks.

    ``known_keys`` returns the model keys the gateway holds (read when a file is checked)."""

    def __init__(self, folder: Path | None, known_keys: Callable[[], Iterable[str]] = tuple) -> None:
        if folder is not None and not folder.is_dir():
            raise ConfigError(f"--ale-credentials {folder}: no such folder (give the one holding the files)")
        self.folder = folder
        self.known_keys = known_keys
        self._private: Path | None = None

    @staticmethod
    def declared(card: TaskCard) -> list[str]:
        """The file names the card's ``requiredCredentials`` declare, each once."""
        return list(dict.fromkeys(c.file for c in card.required_credentials))

    def skip_reason(self, card: TaskCard) -> str | None:
        """Why a task declaring credentials cannot run in this run (``None``: it can)."""
        names = self.declared(card)
        if not names:
            return None
        if self.folder is None:
            return (
                f"the task declares credentials ({', '.join(names)}); pass --ale-credentials DIR "
                "holding those files to run it"
            )
        missing = [n for n in names if not (self.folder / n).is_file()]
        if missing:
            return (
                f"credential file(s) not in --ale-credentials {self.folder}: {', '.join(missing)} "
                "(the task's requiredCredentials)"
            )
        return None

    def _holder(self, card: TaskCard) -> Path:
        """This process's private folder for one task's declared files (stable per set)."""
        if self._private is None:
            self._private = Path(tempfile.mkdtemp(prefix="ale-credentials-"))
        digest = hashlib.sha256("\0".join(self.declared(card)).encode()).hexdigest()[:12]
        return self._private / digest / STAGED_AS

    def env(self, card: TaskCard) -> dict[str, str]:
        """``AGENTHLE_CREDENTIALS_DIR`` for ALE's own setup code, when the task declares any."""
        if not self.declared(card) or self.folder is None:
            return {}
        return {ALE_ENV: str(self._holder(card))}

    def prepare(self, card: TaskCard) -> Path | None:
        """A folder holding exactly the card's declared files, checked (``ConfigError`` for a
        model key); ``None`` when it declares none."""
        names = self.declared(card)
        if not names:
            return None
        reason = self.skip_reason(card)
        if reason is not None or self.folder is None:
            raise ConfigError(reason or "no --ale-credentials folder")
        keys = [k for k in self.known_keys() if len(k) >= MIN_SECRET]
        holder = self._holder(card)
        holder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in names:
            source = self.folder / name
            _refuse_model_key(source, keys)
            shutil.copyfile(source, holder / name)
        return holder

    def close(self) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None


def _refuse_model_key(path: Path, keys: list[str]) -> None:
    stem = path.name.split(".")[0].upper()
    if path.name.upper() in MODEL_KEY_VARS or stem in MODEL_KEY_VARS:
        raise ConfigError(
            f"--ale-credentials {path}: refused, {path.name!r} is named as a model API key "
            f"({stem}); model keys stay with the gateway and never enter a sandbox"
        )
    data = path.read_bytes()
    if any(key.encode() in data for key in keys):
        raise ConfigError(
            f"--ale-credentials {path}: refused, it holds a model API key the gateway uses; "
            "model keys stay with the gateway and never enter a sandbox"
        )
