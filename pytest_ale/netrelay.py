"""In-sandbox wrapper of a ``proxy``-policy command (standard library only; copied into
the sandbox beside the gateway's ``launcher.py`` and run as
``python3 netrelay.py SOCKET -- COMMAND...``).

It reuses the launcher's relay: a free ``127.0.0.1`` port inside the sandbox relayed to
the host proxy's Unix socket ``SOCKET`` (``netproxy.py``). It then runs ``COMMAND`` with
``HTTP_PROXY``, ``HTTPS_PROXY`` (both cases) pointing at that port and
``NO_PROXY`` naming loopback (the gateway's own relay is there), passing its stdin,
stdout and stderr through, and exits with its status. Run around every command of the
trial (the provider does it), so each has its door, whatever its network namespace.
"""

import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from launcher import start_relay

LOOPBACK = "127.0.0.1,localhost,::1"


def proxy_env(url):
    env = dict(os.environ)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = url
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(p for p in (env.get(name), LOOPBACK) if p)
    return env


def main():
    socket_path, separator, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    if separator != "--" or not argv:
        sys.stderr.write("usage: netrelay.py SOCKET -- COMMAND...\n")
        return 2
    url = start_relay(socket_path)
    try:
        proc = subprocess.Popen(argv, env=proxy_env(url))
    except OSError as exc:
        sys.stderr.write("{}: {}\n".format(argv[0], exc))  # noqa: UP032 - any python3
        return 126 if isinstance(exc, PermissionError) else 127
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda num, _frame: proc.send_signal(num))
    code = proc.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
