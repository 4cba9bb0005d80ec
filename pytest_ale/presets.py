"""Named presets: ``--ale-agent=NAME`` and ``--ale-provider=NAME`` resolve to YAML files.

Lookup order: a path to a ``.yaml`` file; ``<rootdir>/agents/NAME.yaml`` (or
``providers/``); the built-ins shipped in ``pytest_ale/presets/``; finally a registered
kind of that name with no options. A preset is a mapping: ``kind`` names the registered
implementation (default: the preset's name), every other key is an option for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import registry
from .errors import ConfigError

BUILTIN = Path(__file__).parent / "presets"


@dataclass
class Preset:
    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    source: str = "built-in"


def resolve(name: str, what: str, rootdir: Path, overrides: dict[str, Any] | None = None) -> Preset:
    """Resolve an agent (``what="agents"``) or provider (``"providers"``) preset."""
    group = registry.AGENT_GROUP if what == "agents" else registry.PROVIDER_GROUP
    candidates: list[Path] = []
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name) if Path(name).is_absolute() else rootdir / name
        if not path.is_file():
            raise ConfigError(f"{what[:-1]} preset file {path} does not exist")
        candidates = [path]
    else:
        candidates = [rootdir / what / f"{name}.yaml", BUILTIN / what / f"{name}.yaml"]
    for path in candidates:
        if path.is_file():
            options = _read(path)
            kind = str(options.pop("kind", Path(path).stem))
            options.update(overrides or {})
            return Preset(Path(path).stem, kind, options, str(path))
    if name in registry.names(group):
        return Preset(name, name, dict(overrides or {}))
    raise ConfigError(
        f"no {what[:-1]} named {name!r}: looked for {candidates[0]}, {candidates[-1]} and a "
        f"registered kind (installed: {', '.join(registry.names(group))})"
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read preset: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}; fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a YAML mapping (key: value), not a list")
    return data
