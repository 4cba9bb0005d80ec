"""A trial's network, on purpose: the policy (``none``, ``proxy`` or ``open``), who decides
it, the hosts a ``proxy`` trial may reach, and the proxy's life around the trial.

- ``none`` (the default): no egress at all; the model gateway's socket is the one door.
- ``proxy``: HTTP(S) only, through a host-side forward proxy (``netproxy.py``) reached by
  a Unix socket exposed in the sandbox like the gateway's; it lets through only the hosts
  of ``--ale-proxy-allow`` (default: the package indexes this machine's pip, uv and npm
  are configured to use) and never a model API (the gateway's upstreams), and logs every
  host asked for into the trial's ``network.jsonl``.
- ``open``: the provider's normal network (model APIs are reachable, but no key is in the
  sandbox: the gateway stays the only door to a model).

The card asks (``"network": "none" | "proxy" | "open"``, ``true`` meaning ``open`` and
``false`` ``none`` as before); the run decides: ``--ale-network`` (ini ``ale_network``),
when set, is every trial's policy, whatever its card asks; unset, the card's is. Agent
and grader commands live under the same policy. A grader that raises after the proxy
refused it a host is an infrastructure error (the run's allow list, not the agent), and
any host refused while grading is a warning on the trial.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from .errors import AgentFault, AleError, ConfigError, InfrastructureError
from .netproxy import ForwardProxy, Rules

if TYPE_CHECKING:
    from .sandbox import SandboxSpec

Policy = Literal["none", "proxy", "open"]
POLICIES: tuple[Policy, ...] = ("none", "proxy", "open")
#: where a ``proxy`` trial's proxy socket is inside the sandbox
PROXY_SOCKET = "/ale/netproxy.sock"
#: the relay run around each command (``SandboxSpec.proxy``), and the launcher it reuses
RELAY = Path(__file__).resolve().parent / "netrelay.py"
LAUNCHER = Path(__file__).resolve().parent / "gateway" / "launcher.py"
#: the provider capability that says its sandboxes honour ``SandboxSpec.proxy``
PROXY_CAPABILITY = "netproxy"


def policy_of(value: Any, where: str = "network") -> Policy:
    """A policy from a card or an option: a name, or a bool (``true`` is ``open``)."""
    if isinstance(value, bool):
        return "open" if value else "none"
    text = str(value).strip().lower()
    if text not in POLICIES:
        raise ConfigError(f"{where} must be one of none, proxy, open (or true/false), not {value!r}")
    return text  # type: ignore[return-value]


def resolve(card: Policy, run: Policy | None) -> Policy:
    """The run's policy when it set one, else the card's."""
    return run or card


@dataclass
class NetworkSettings:
    """``--ale-network`` and ``--ale-proxy-allow``, checked once."""

    policy: Policy | None = None
    #: host patterns a ``proxy`` trial may reach (empty: ``default_allow()``)
    allow: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, policy: Any, allow: list[str] | None) -> NetworkSettings:
        hosts = [h.strip() for item in allow or [] for h in item.replace(",", " ").split() if h.strip()]
        return cls(policy_of(policy, "--ale-network") if policy else None, hosts)

    def allowed(self) -> list[str]:
        return list(self.allow) or default_allow()


# -- the default allow list: what this machine's package tools use -----------------------
def _hosts(urls: Any) -> list[str]:
    found = []
    for url in str(urls or "").split():
        host = urlsplit(url).hostname if "://" in url else None
        if host:
            found.append(host)
    return found


def _pip_config() -> dict[str, str]:
    """pip's own view of its settings (``pip config list``: files and ``PIP_*``)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    values = {}
    for line in done.stdout.splitlines():
        key, sep, raw = line.partition("=")
        if sep:
            with suppress(ValueError):
                values[key.rpartition(".")[2]] = " ".join(shlex.split(raw))
    return values


def _pip_default_index() -> list[str]:
    """The index pip uses when none is configured, and where it keeps the files, as pip
    itself names them."""
    try:
        from pip._internal.models.index import PyPI  # the one place pip names its default
    except ImportError:
        return []
    return [h for h in (urlsplit(PyPI.url).hostname, PyPI.file_storage_domain) if h]


def _npm_registry() -> list[str]:
    npm = shutil.which("npm")
    if npm is None:
        return []
    try:
        done = subprocess.run([npm, "config", "get", "registry"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return _hosts(done.stdout.strip())


def _uv_config() -> list[str]:
    names = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX")
    urls = [os.environ.get(name, "") for name in names]
    config = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "uv" / "uv.toml"
    if config.is_file():
        import tomllib

        with suppress(tomllib.TOMLDecodeError, OSError):
            data = tomllib.loads(config.read_text())
            urls += [str(data.get("index-url", "")), *map(str, data.get("extra-index-url", []))]
            urls += [str(i.get("url", "")) for i in data.get("index", []) if isinstance(i, dict)]
    return _hosts(" ".join(urls))


@lru_cache(maxsize=1)
def _default_allow() -> tuple[str, ...]:
    pip = _pip_config()
    hosts = _hosts(pip.get("index-url")) or _pip_default_index()
    hosts += _hosts(pip.get("extra-index-url")) + pip.get("trusted-host", "").split()
    uv = _uv_config()
    return tuple(dict.fromkeys([*hosts, *(uv or []), *_npm_registry()]))


def default_allow() -> list[str]:
    """The hosts of the package indexes this machine's pip (its config, ``PIP_*``, else
    pip's own default index and file host), uv (``UV_*`` and ``uv.toml``) and npm (``npm
    config get registry``) use; read once per process."""
    return list(_default_allow())


def model_hosts() -> set[tuple[str, int]]:
    """The model APIs the gateway talks to: the proxy refuses them even when allowed."""
    from .gateway import runtime
    from .gateway.config import DEFAULT_UPSTREAMS

    urls = [*DEFAULT_UPSTREAMS.values(), *runtime.upstream_urls()]
    found = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            found.add((parts.hostname.lower(), parts.port or (443 if parts.scheme == "https" else 80)))
    return found


# -- one trial's network --------------------------------------------------------------------
@dataclass
class TrialNetwork:
    """One trial's policy, and its proxy while it runs (``proxy`` only)."""

    policy: Policy
    proxy: ForwardProxy | None = None
    folder: Path | None = None

    def apply(self, spec: SandboxSpec) -> None:
        """Set ``spec``'s ``network``, and its ``proxy`` and socket when there is one."""
        spec.network = self.policy == "open"
        if self.proxy is not None:
            spec.proxy = PROXY_SOCKET
            spec.sockets[PROXY_SOCKET] = str(self.proxy.socket_path)

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    @contextmanager
    def grading(self, warnings: list[str]) -> Iterator[None]:
        """Around the grader: its hosts are logged as ``grade``; a host refused is a warning,
        and a grader failing after one is an infrastructure error, never the agent's 0."""
        if self.proxy is None:
            yield
            return
        self.proxy.phase = "grade"
        try:
            yield
        except AleError as exc:
            refused = self._refused()
            if refused and not isinstance(exc, AgentFault):
                raise NetworkRefused(
                    f"the grader failed after the network proxy refused it {refused} "
                    f"(network.jsonl; allow with --ale-proxy-allow HOST): {exc}"
                ) from exc
            raise
        finally:
            refused = self._refused()
            if refused:
                warnings.append(f"network: the proxy refused the grader {refused} (network.jsonl)")

    def _refused(self) -> str:
        assert self.proxy is not None
        hosts = dict.fromkeys(str(e["host"]) for e in self.proxy.refused("grade"))
        return ", ".join(hosts)


class NetworkRefused(AleError):
    """The grader needed a host the run's proxy does not allow: an infrastructure error
    of the run's making, not retried (the same allow list would refuse it again, after
    a second paid agent run)."""

    kind: ClassVar[str] = "infrastructure"


def open_network(policy: Policy, settings: NetworkSettings, capabilities: frozenset[str]) -> TrialNetwork:
    """Start a ``proxy`` trial's proxy (its log, ``proxy.entries``, becomes the trial's
    ``network.jsonl``); other policies need nothing started."""
    if policy != "proxy":
        return TrialNetwork(policy)
    if PROXY_CAPABILITY not in capabilities:
        raise ConfigError(
            "network policy 'proxy': this provider cannot route its sandboxes through the "
            "egress proxy (the local and docker providers can); use --ale-network none or open"
        )
    folder = Path(tempfile.mkdtemp(prefix="ale-net-"))
    folder.chmod(0o755)  # the agent's uid reaches the socket inside
    rules = Rules(settings.allowed(), model_hosts())
    try:
        proxy = ForwardProxy(folder / "proxy.sock", rules).start()
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise InfrastructureError(f"the network proxy could not start: {exc}") from exc
    return TrialNetwork(policy, proxy, folder)


def relay_files() -> dict[str, str]:
    """The files a provider puts in the sandbox for ``SandboxSpec.proxy`` (name -> text)."""
    return {path.name: path.read_text(encoding="utf-8") for path in (RELAY, LAUNCHER)}


def relay_argv(python: str, folder: str, socket_path: str, argv: list[str]) -> list[str]:
    """``argv`` run through the relay in ``folder`` (``relay_files``) to ``socket_path``."""
    return [python, f"{folder}/{RELAY.name}", socket_path, "--", *argv]


def relay_tar(folder: str) -> bytes:
    """``relay_files`` as a tar of ``folder`` (relative, root's, world-readable)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        parts = folder.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            info = tarfile.TarInfo("/".join(parts[:depth]))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, text in relay_files().items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{folder.strip('/')}/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ini_options() -> list[tuple[str, str, Any, str]]:
    """The options of this module, in ``options.OPTIONS``' shape."""
    return [
        (
            "network",
            "string",
            None,
            "network policy of every trial: none, proxy or open (default: the card's, else none)",
        ),
        (
            "proxy-allow",
            "linelist",
            [],
            "host a proxy-policy trial may reach (repeat; .suffix for subdomains; default: the "
            "package indexes this machine's pip, uv and npm use)",
        ),
    ]
