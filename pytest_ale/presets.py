"""Named presets: ``--ale-agent=NAME`` and ``--ale-provider=NAME`` resolve to YAML files.

Lookup order: a path to a ``.yaml`` file (``options`` makes a command-line one relative to
the folder pytest was started in); ``<rootdir>/agents/NAME.yaml`` (or ``providers/``),
then the same under the folder pytest was started in; the built-ins shipped in
``pytest_ale/presets/``; finally a registered kind of that name with no options. A preset
is labelled by its name, a file's by its stem (never the path): test ids, artifact
folders, tables and results.jsonl show ``claude`` for ``presets/claude.yaml``. A preset
is a mapping: ``kind`` names the registered implementation (default: the preset's
name), every other key is an option for it.
Options are checked against the implementation's ``Options`` model when the session is
set up (``Preset.validate``, ``typed_options``): a wrong key or value stops the run there,
naming the file or command-line option it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import registry
from .errors import ConfigError
from .options import is_preset_path
from .typed_options import OptionsModel

BUILTIN = Path(__file__).parent / "presets"


@dataclass
class Preset:
    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    source: str = "built-in"
    #: where each option came from when not from ``source``: the command-line option
    origins: dict[str, str] = field(default_factory=dict)
    #: ``agent`` or ``provider``
    role: str = "provider"

    def validate(self, cls: Any) -> OptionsModel:
        """The options checked against ``cls.Options``; ``ConfigError`` naming the key, where
        it came from, the valid keys and the nearest one."""
        model: type[OptionsModel] = cls.Options
        label = repr(self.name) if self.name == self.kind else f"{self.name!r} ({self.kind})"
        source = (
            self.source
            if self.source != "built-in"
            else f"the {self.role} kind {self.name!r} (no preset file)"
        )
        return model.validated(
            self.options, owner=f"{self.role} {label}", origins=self.origins, source=source
        )


def resolve(
    name: str,
    what: str,
    rootdir: Path,
    overrides: Mapping[str, Any] | None = None,
    origins: Mapping[str, str] | None = None,
    invocation_dir: Path | None = None,
) -> Preset:
    """Resolve an agent (``what="agents"``) or provider (``"providers"``) preset.

    ``overrides`` win over the file's options; ``origins`` names where each came from
    (``--ale-provider-opt``, say) for messages; ``invocation_dir``, the folder pytest was
    started in, is searched for ``agents/NAME.yaml`` after the rootdir."""
    group = registry.AGENT_GROUP if what == "agents" else registry.PROVIDER_GROUP
    candidates: list[Path] = []
    if is_preset_path(name):
        path = Path(name) if Path(name).is_absolute() else rootdir / name
        if not path.is_file():
            raise ConfigError(f"{what[:-1]} preset file {path} does not exist")
        candidates = [path]
    else:
        folders = dict.fromkeys(f for f in (rootdir, invocation_dir) if f is not None)
        candidates = [*(f / what / f"{name}.yaml" for f in folders), BUILTIN / what / f"{name}.yaml"]
    given = {key: (origins or {}).get(key, "the command line") for key in overrides or {}}
    role = what[:-1]
    for path in candidates:
        if path.is_file():
            options = _read(path)
            kind = str(options.pop("kind", Path(path).stem))
            options.update(overrides or {})
            return Preset(Path(path).stem, kind, options, str(path), given, role)
    if name in registry.names(group):
        return Preset(name, name, dict(overrides or {}), origins=given, role=role)
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
