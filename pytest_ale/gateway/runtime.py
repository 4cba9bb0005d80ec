"""The one gateway of this pytest process (controller or xdist worker), started lazily.

``hooks.py`` configures it at ``pytest_configure`` and stops it at ``pytest_unconfigure``;
harnesses call ``gateway()`` when they first need it, so runs with no model-driven agent
never start a server.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .config import GatewayConfig

if TYPE_CHECKING:
    from .server import Gateway

_lock = threading.Lock()
_config: GatewayConfig | None = None
_gateway: Gateway | None = None


def configure(config: GatewayConfig) -> None:
    global _config
    shutdown()
    with _lock:
        _config = config


def gateway() -> Gateway:
    """This process's gateway, started on first use."""
    global _gateway
    with _lock:
        if _gateway is None:
            try:
                from .server import Gateway
            except ImportError as exc:
                raise ConfigError(
                    f"the model gateway needs aiohttp ({exc}); pip install 'pytest-ale[gateway]'"
                ) from exc
            _gateway = Gateway(_config or GatewayConfig()).start()
        return _gateway


def upstream_urls() -> list[str]:
    """The model APIs this process's gateway is configured to reach (none before
    ``configure``)."""
    with _lock:
        return list(_config.upstreams.values()) if _config is not None else []


def known_keys() -> list[str]:
    """The real API keys this process's gateway forwards with (the environment's, or
    ``--ale-env-file``'s): what must never enter a sandbox (``credentials.py`` checks)."""
    from .keys import load_keys

    with _lock:
        env_file = _config.env_file if _config is not None else None
    return list(load_keys(env_file).by_provider.values())


def shutdown() -> None:
    global _gateway
    with _lock:
        running, _gateway = _gateway, None
    if running is not None:
        running.stop()
