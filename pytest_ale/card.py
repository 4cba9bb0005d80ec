"""``task_card.json``: the task's metadata, validated with pydantic, unknown keys tolerated.

Both card dialects read the same: native cards (``domain``, ``tier``, ``timeout``, ``os``,
``gpu``) and ALE cards (``category``, ``vm.snapshot``, ``vm.timeout`` / ``vm.timeout_s``).
The derived facts (``domain``, ``os``, ``gpu``, ``licensed``, ``tier``, ``timeout_s``)
become pytest markers and the sandbox request.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from .errors import TaskDefinitionError
from .network import Policy

DEFAULT_TIMEOUT_S = 1800.0
#: how long the task's ``setup`` and grader may each run, and its import (with ``load()``)
DEFAULT_GRADER_TIMEOUT_S = 600.0
DEFAULT_IMPORT_TIMEOUT_S = 60.0
#: the largest values a card may give: beyond them a number is a typo, not a plan
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_CPUS, MAX_MEMORY_GB, MAX_DISK_GB = 1024.0, 16384.0, 65536.0
SECONDS = "seconds the agent may run: a number above 0, e.g. 1800"
TIERS = ("near-term", "full-spectrum", "last-exam")


def _positive(most: float, description: str) -> Any:
    """An optional finite number above 0 and at most ``most``; ``description`` says what
    it is in the error a wrong value gets."""
    return Field(default=None, gt=0, le=most, allow_inf_nan=False, description=description)


class VmCard(BaseModel):
    """ALE's ``vm`` block: which machine image and how long the task may take."""

    model_config = ConfigDict(extra="allow")
    snapshot: str | None = Field(default=None, description='a machine image name, e.g. "ubuntu-22"')
    machineType: str | None = Field(default=None, description='a machine type, e.g. "e2-standard-4"')
    timeout: float | None = _positive(MAX_TIMEOUT_S, SECONDS)
    timeout_s: float | None = _positive(MAX_TIMEOUT_S, SECONDS)
    vcpus: float | None = _positive(MAX_CPUS, "a number of CPUs above 0, e.g. 4")
    memory_gb: float | None = _positive(MAX_MEMORY_GB, "GiB of memory above 0, e.g. 8")
    disk_gb: float | None = _positive(MAX_DISK_GB, "GiB of disk above 0, e.g. 40")

    @field_validator("timeout", "timeout_s", "vcpus", "memory_gb", "disk_gb", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return _not_bool(value)


class CredentialCard(BaseModel):
    """One entry of ALE's ``requiredCredentials``: a licence file or the like the task's
    software needs, staged as ``input/credentials/<file>`` (``credentials.py``)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description='what it is, e.g. "matlab_license"')
    file: str = Field(description='a plain file name, e.g. "license.lic"', pattern=r"^[^/\\.][^/\\]*$")
    purpose: str | None = Field(default=None, description="a string")


class TaskCard(BaseModel):
    """The validated card. Every field is optional; the folder supplies what is missing."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = Field(default=None, alias="taskId", description='a string, e.g. "loan-amortization"')
    title: str | None = Field(default=None, description="a string")
    summary: str | None = Field(default=None, description="a string")
    domain_field: str | None = Field(default=None, alias="domain", description='a string, e.g. "finance"')
    category: str | None = Field(default=None, description='a string, e.g. "finance"')
    tier_field: str | None = Field(default=None, alias="tier", description=f"one of {', '.join(TIERS)}")
    timeout: float | None = _positive(MAX_TIMEOUT_S, SECONDS)
    grader_timeout: float | None = _positive(
        MAX_TIMEOUT_S,
        f"seconds setup() and evaluate() may each run: a number above 0, "
        f"default {DEFAULT_GRADER_TIMEOUT_S:g}",
    )
    import_timeout: float | None = _positive(
        MAX_TIMEOUT_S,
        f"seconds importing main.py (and ALE's load()) may take: a number above 0, "
        f"default {DEFAULT_IMPORT_TIMEOUT_S:g}",
    )
    os_field: str | None = Field(default=None, alias="os", description='"linux", "windows" or "macos"')
    gpu_field: bool | None = Field(default=None, alias="gpu", description="true or false")
    licensed_field: bool | None = Field(default=None, alias="licensed", description="true or false")
    cpus: float | None = _positive(MAX_CPUS, "a number of CPUs above 0, e.g. 2")
    memory_gb: float | None = _positive(MAX_MEMORY_GB, "GiB of memory above 0, e.g. 4")
    threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="the score that passes, from 0 to 1, e.g. 0.8",
    )
    network: Policy = Field(
        default="none", description='"none", "proxy" or "open" (true is "open", false "none")'
    )
    tags: list[str] = Field(default_factory=list, description='a list of strings, e.g. ["pdf", "excel"]')
    vm: VmCard | None = Field(default=None, description='an object, e.g. {"snapshot": "ubuntu-22"}')
    required_credentials: list[CredentialCard] = Field(
        default_factory=list,
        alias="requiredCredentials",
        description='a list of {"type": ..., "file": "license.lic"} objects',
    )

    @field_validator(
        "timeout", "grader_timeout", "import_timeout", "cpus", "memory_gb", "threshold", mode="before"
    )
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return _not_bool(value)

    @field_validator("network", mode="before")
    @classmethod
    def _network(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "open" if value else "none"
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("os_field")
    @classmethod
    def _known_os(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in ("linux", "windows", "macos"):
            raise ValueError("os must be 'linux', 'windows' or 'macos'")
        return value.lower() if value else value

    @field_validator("tier_field")
    @classmethod
    def _known_tier(cls, value: str | None) -> str | None:
        if value is not None and value not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}")
        return value

    # -- derived facts -------------------------------------------------------------------
    @property
    def snapshot(self) -> str:
        return (self.vm.snapshot or "") if self.vm else ""

    def domain(self, folder: Path) -> str:
        """The card's domain (or ALE ``category``), else the parent folder's name."""
        return self.domain_field or self.category or folder.parent.name or "default"

    @property
    def tier(self) -> str | None:
        return self.tier_field

    @property
    def os(self) -> str:
        if self.os_field:
            return self.os_field
        snap = self.snapshot.lower()
        if snap and not any(word in snap for word in ("ubuntu", "linux", "debian")):
            return "windows"
        return "linux"

    @property
    def gpu(self) -> bool:
        if self.gpu_field is not None:
            return self.gpu_field
        return self.snapshot.lower().startswith("gpu")

    @property
    def licensed(self) -> bool:
        if self.licensed_field is not None:
            return self.licensed_field
        return "license" in self.snapshot.lower()

    @property
    def timeout_s(self) -> float:
        if self.timeout:
            return self.timeout
        if self.vm and (self.vm.timeout or self.vm.timeout_s):
            return float(self.vm.timeout or self.vm.timeout_s or DEFAULT_TIMEOUT_S)
        return DEFAULT_TIMEOUT_S

    @property
    def grader_timeout_s(self) -> float:
        return self.grader_timeout or DEFAULT_GRADER_TIMEOUT_S

    @property
    def import_timeout_s(self) -> float:
        return self.import_timeout or DEFAULT_IMPORT_TIMEOUT_S

    @property
    def resources(self) -> dict[str, float | None]:
        vm = self.vm
        return {
            "cpus": self.cpus or (vm.vcpus if vm else None),
            "memory_gb": self.memory_gb or (vm.memory_gb if vm else None),
            "disk_gb": vm.disk_gb if vm else None,
        }


def _not_bool(value: Any) -> Any:
    """JSON ``true`` is no number of seconds or CPUs (pydantic would read it as 1)."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "Input should be a number, not true or false")
    return value


def load_card(path: Path) -> TaskCard:
    """Read and validate a card; every failure names the file and the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskDefinitionError(
            f"{path}: cannot read the task card ({exc.strerror or exc}); make it a readable UTF-8 JSON file"
        ) from exc
    except UnicodeDecodeError as exc:
        raise TaskDefinitionError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8") from exc
    try:
        raw: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskDefinitionError(
            f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; fix the JSON syntax"
        ) from exc
    if not isinstance(raw, dict):
        raise TaskDefinitionError(
            f"{path}: the card must be a JSON object ({{...}}), not {type(raw).__name__}"
        )
    try:
        return TaskCard.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise TaskDefinitionError(f"{path}: invalid task card: {problems}") from exc


def _problem(err: Any) -> str:
    """One validation error as ``key: what is wrong (give ...)``."""
    loc = [str(part) for part in err["loc"]]
    text = f"{'.'.join(loc) or '(card)'}: {err['msg'].removeprefix('Value error, ')}"
    if err["type"] == "value_error":  # our own validators already say what to give
        return text
    wanted = _description(TaskCard, loc)
    return f"{text} (give {wanted})" if wanted else text


def _description(model: type[BaseModel], loc: list[str]) -> str | None:
    """The description of the field at ``loc`` (keys as spelled in the card)."""
    if not loc:
        return None
    for name, info in model.model_fields.items():
        if loc[0] in (name, info.alias):
            if len(loc) > 1 and name == "vm":
                return _description(VmCard, loc[1:])
            return info.description
    return None


_MARKER_UNSAFE = re.compile(r"[^0-9A-Za-z_]+")
_RESERVED_MARKERS = frozenset({"skip", "skipif", "xfail", "parametrize", "usefixtures", "filterwarnings"})


def marker_name(word: str) -> str:
    """A pytest-marker-safe spelling of a card fact (``near-term`` -> ``near_term``)."""
    name = _MARKER_UNSAFE.sub("_", word.strip()).strip("_").lower() or "unnamed"
    if name[0].isdigit() or name in _RESERVED_MARKERS:
        name = f"domain_{name}"
    return name
