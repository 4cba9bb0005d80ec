"""Command-line options and ini keys, and the settings resolved from them.

Every ``--ale-x`` option has an ini key ``ale_x`` (in ``pytest.ini`` / ``pyproject.toml``),
the command line winning. ``Settings.from_config`` validates them once, at configure time,
so a bad value stops the run before anything is provisioned, with a message naming the fix.

Paths are read as the user typed them: a path given on the command line is relative to the
folder pytest was started in (``config.invocation_params.dir``, as ``--junitxml`` is), a
path in an ini key relative to the ini file's folder (the rootdir); ``option_path`` is the
one place that decides it, for the gateway's options too.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .card import MAX_TIMEOUT_S
from .errors import ConfigError
from .network import NetworkSettings, ini_options

# (option, ini type, default, help)
OPTIONS: list[tuple[str, str, Any, str]] = [
    (
        "agent",
        "linelist",
        ["oracle"],
        "agent preset or kind to evaluate; repeat for a matrix (default: oracle)",
    ),
    ("provider", "string", "local", "sandbox provider preset or kind (default: local)"),
    ("provider-opt", "linelist", [], "provider option KEY=VALUE, overriding the preset"),
    (
        "agent-opt",
        "linelist",
        [],
        "agent option KEY=VALUE, overriding the agent preset of every agent in the matrix",
    ),
    ("model", "string", None, "model name handed to every agent"),
    ("trials", "string", "1", "trials per agent x variant (default: 1)"),
    ("threshold", "string", None, "score a trial must reach to pass (default: card, else 1.0)"),
    ("timeout", "string", None, "agent time budget in seconds (default: the task card's)"),
    (
        "output",
        "string",
        None,
        "folder for artifacts and results (default: reports/ in the folder pytest was run from)",
    ),
    ("task-list", "linelist", [], "file of task paths, one a line: run only those"),
    (
        "data",
        "string",
        None,
        "ALE task data root laid out <domain>/<task>/<variant>/{input,software,reference}: "
        "DIR, FILE.tar.gz, hf://OWNER/NAME[@REV][/PREFIX], s3://BUCKET/PREFIX or gs://BUCKET/PREFIX",
    ),
    (
        "reference",
        "string",
        None,
        "root of the references, when published apart from --ale-data (any of its forms): "
        "<domain>/<task>/<variant>/reference",
    ),
    (
        "credentials",
        "string",
        None,
        "folder of the credential files tasks declare (requiredCredentials: licence files), staged "
        "as input/credentials/<file>; without it such tasks are skipped. Never model API keys",
    ),
    ("infra-retries", "string", "1", "retries of a trial after an infrastructure error"),
    ("run-id", "string", None, "name of this run (default: time-stamped)"),
    ("shard", "string", None, "run only shard I of N (I/N, 1-based): splits a suite across CI jobs"),
    (
        "baseline",
        "string",
        None,
        "results.jsonl or summary.json of an earlier run: fail on a significant score drop",
    ),
    ("gate-alpha", "string", "0.05", "significance level of the --ale-baseline gate"),
    *ini_options(),
]
FLAGS: list[tuple[str, str]] = [
    ("keep", "keep sandboxes after the trial for debugging (prints how to enter them)"),
    ("resume", "skip trials already recorded in this --ale-run-id's results.jsonl"),
    ("sweep", "remove sandboxes left behind by crashed runs (by --ale-run-id, else expired), then exit"),
    (
        "sweep-force",
        "with --ale-sweep --ale-run-id: sweep even while that run still runs (its trials whose "
        "sandbox vanishes become infrastructure errors)",
    ),
]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("ale", "pytest-ale: evaluate agent harnesses on tasks")
    for name, kind, default, help_text in OPTIONS:
        dest = "ale_" + name.replace("-", "_")
        action = "append" if kind == "linelist" else "store"
        group.addoption(f"--ale-{name}", dest=dest, action=action, default=None, help=help_text)
        parser.addini(dest, help=help_text, type=kind, default=default)
    for name, help_text in FLAGS:
        dest = "ale_" + name.replace("-", "_")
        group.addoption(f"--ale-{name}", dest=dest, action="store_true", default=None, help=help_text)
        parser.addini(dest, help=help_text, type="bool", default=False)


def _get(config: pytest.Config, name: str) -> Any:
    dest = "ale_" + name.replace("-", "_")
    value = config.getoption(dest)
    return value if value is not None else config.getini(dest)


def on_command_line(config: pytest.Config, dest: str) -> bool:
    """Whether option ``dest`` (``ale_data``, say) was given on the command line."""
    return config.getoption(dest, None) not in (None, "", [])


def option_path(config: pytest.Config, dest: str, value: Any) -> Path:
    """``value`` of option ``dest`` as an absolute path: relative to the folder pytest was
    started in when given on the command line, to the rootdir when read from an ini key."""
    path = Path(str(value)).expanduser()
    if path.is_absolute():
        return path
    on_cli = on_command_line(config, dest)
    return (Path(config.invocation_params.dir) if on_cli else Path(config.rootpath)) / path


def _path(config: pytest.Config, name: str) -> Path | None:
    value = _get(config, name)
    return option_path(config, "ale_" + name.replace("-", "_"), value) if value else None


def _preset_name(config: pytest.Config, name: str, value: str) -> str:
    """A preset given by path made absolute (its label is still the file's stem); a name as is."""
    if is_preset_path(value):
        return str(option_path(config, "ale_" + name, value))
    return value


def is_preset_path(value: str) -> bool:
    """``--ale-agent`` / ``--ale-provider`` names a YAML file rather than a preset or kind."""
    return value.endswith((".yaml", ".yml")) or "/" in value


def _data(config: pytest.Config, name: str = "data") -> str | None:
    """``--ale-data`` / ``--ale-reference``: a URL as is, a folder or archive made absolute."""
    value = _get(config, name)
    if not value:
        return None
    text = str(value)
    return text if "://" in text else str(option_path(config, f"ale_{name}", text))


def _origin(config: pytest.Config, name: str) -> str:
    """Where ``_get`` found option ``name``: the command line, else the ini key."""
    dest = "ale_" + name.replace("-", "_")
    return f"--ale-{name}" if config.getoption(dest) is not None else f"the ini key {dest}"


@dataclass
class Settings:
    agents: list[str]
    provider: str
    provider_options: dict[str, Any]
    #: ``--ale-agent-opt``: options for every agent, overriding their presets
    agent_options: dict[str, Any]
    model: str | None
    trials: int
    threshold: float | None
    timeout: float | None
    output: Path
    task_lists: list[Path]
    #: ``--ale-data``: a folder, an archive, ``hf://``, ``s3://`` or ``gs://`` (``datastore.py``)
    data: str | None
    infra_retries: int
    run_id: str
    keep: bool
    sweep: bool
    sweep_force: bool
    resume: bool
    shard: tuple[int, int] | None
    baseline: Path | None
    gate_alpha: float
    #: ``--ale-reference``: the references' root, when apart from ``data`` (same forms)
    reference: str | None = None
    #: ``--ale-credentials``: the folder of the credential files tasks declare
    credentials: Path | None = None
    rootdir: Path = field(default_factory=Path.cwd)
    #: the folder pytest was started in: command-line paths are relative to it
    invocation_dir: Path = field(default_factory=Path.cwd)
    #: where ``provider_options`` / ``agent_options`` came from (the option, or its ini key)
    opt_origins: dict[str, str] = field(default_factory=dict)
    #: ``--ale-network`` and ``--ale-proxy-allow`` (``network.py``)
    network: NetworkSettings = field(default_factory=NetworkSettings)

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        rootdir = Path(config.rootpath)
        invocation_dir = Path(config.invocation_params.dir)
        given = [a for a in (_get(config, "agent") or ["oracle"]) if a.strip()]
        agents = [_preset_name(config, "agent", a) for a in given]
        lists = [p for p in _get(config, "task-list") or [] if p.strip()]
        task_lists = [option_path(config, "ale_task_list", p) for p in lists]
        run_id = _get(config, "run-id") or getattr(config, "workerinput", {}).get("ale_run_id")
        return cls(
            agents=list(dict.fromkeys(agents)),
            provider=_preset_name(config, "provider", str(_get(config, "provider"))),
            provider_options=key_values(_get(config, "provider-opt") or [], "--ale-provider-opt"),
            agent_options=key_values(_get(config, "agent-opt") or [], "--ale-agent-opt"),
            model=_get(config, "model"),
            trials=_number(_get(config, "trials"), "--ale-trials", int, minimum=1),
            threshold=_optional(_get(config, "threshold"), "--ale-threshold", 0.0, 1.0),
            timeout=_optional(_get(config, "timeout"), "--ale-timeout", 0.001, MAX_TIMEOUT_S),
            output=_path(config, "output") or invocation_dir / "reports",
            task_lists=task_lists,
            data=_data(config),
            infra_retries=_number(_get(config, "infra-retries"), "--ale-infra-retries", int, 0),
            run_id=run_id or new_run_id(),
            keep=bool(_get(config, "keep")),
            sweep=bool(_get(config, "sweep")),
            sweep_force=bool(_get(config, "sweep-force")),
            resume=bool(_get(config, "resume")),
            shard=_shard(_get(config, "shard")),
            baseline=_path(config, "baseline"),
            gate_alpha=_optional(_get(config, "gate-alpha"), "--ale-gate-alpha", 1e-9, 0.5) or 0.05,
            reference=_data(config, "reference"),
            credentials=_path(config, "credentials"),
            rootdir=rootdir,
            invocation_dir=invocation_dir,
            opt_origins={name: _origin(config, f"{name}-opt") for name in ("provider", "agent")},
            network=NetworkSettings.parse(_get(config, "network"), _get(config, "proxy-allow")),
        )


def _shard(value: Any) -> tuple[int, int] | None:
    if not value:
        return None
    index, _, total = str(value).partition("/")
    try:
        i, n = int(index), int(total)
    except ValueError:
        i = n = 0
    if not 1 <= i <= n:
        raise ConfigError(f"--ale-shard takes I/N with 1 <= I <= N (e.g. 2/4), not {value!r}")
    return (i, n)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _number(value: Any, option: str, kind: type, minimum: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} must be a {kind.__name__}, not {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{option} must be at least {minimum}, not {value!r}")
    return number


def _optional(value: Any, option: str, low: float, high: float | None) -> float | None:
    if value in (None, ""):
        return None
    number = _number(value, option, float, low)
    if high is not None and number > high:
        raise ConfigError(f"{option} must be between {low:g} and {high:g}, not {value!r}")
    return number


def key_values(items: list[str], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` items as a mapping, each value read as YAML (``3``, ``true``, ``[a, b]``)."""
    import yaml

    result: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} takes KEY=VALUE, not {item!r}")
        try:
            result[key.strip()] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{option} {item!r}: the value is not valid YAML ({problem})") from None
    return result
