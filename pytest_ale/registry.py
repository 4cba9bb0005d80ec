"""Finding providers and agents by name, through entry points, lazily.

Built-ins and third parties register the same way, in their ``pyproject.toml``::

    [project.entry-points."pytest_ale.providers"]
    mycloud = "my_package.sandbox:MyCloudProvider"

Nothing is imported until a name is asked for, so an unused provider's heavy SDK never
loads; a missing SDK is reported with the pip extra that installs it.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import ConfigError

PROVIDER_GROUP = "pytest_ale.providers"
AGENT_GROUP = "pytest_ale.agents"

#: the pip extra that brings each built-in's dependencies
EXTRAS = {"docker": "docker", "gcp": "gcp", "aws": "aws", "libvirt": "libvirt", "static": "ssh"}


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    return sorted(_entry_points(group))


def load(group: str, name: str) -> Any:
    """The class registered as ``name`` in ``group``; errors say what to install."""
    what = "provider" if group == PROVIDER_GROUP else "agent"
    found = _entry_points(group).get(name)
    if found is None:
        raise ConfigError(
            f"unknown {what} kind {name!r}; installed: {', '.join(names(group)) or 'none'} "
            f"(a third-party {what} registers under the {group!r} entry-point group)"
        )
    try:
        return found.load()
    except ImportError as exc:
        extra = EXTRAS.get(name)
        hint = f"pip install 'pytest-ale[{extra}]'" if extra else f"install what {found.value} needs"
        raise ConfigError(f"{what} {name!r} cannot load ({exc}); {hint}") from exc
