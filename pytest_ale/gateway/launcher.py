"""In-sandbox launcher and relay (standard library only; copied into the sandbox and run
with ``python3 launcher.py spec.json``).

The sandbox has no network; its one door is the gateway's Unix socket. This script
listens on ``127.0.0.1:<free port>`` inside the sandbox and relays every connection to
that socket, so a CLI gets a plain ``http://127.0.0.1:<port>`` base URL. It then writes
the harness's config files and runs the CLI (stdin closed), with ``@ALE_BASE_URL@`` in
files, environment and arguments replaced by that URL (and a leading ``~/`` in file
paths and values by the sandbox HOME), teeing the CLI's stdout to a log
file. The relay lives in this process, so it ends with the agent's process tree.

With a ``token`` in the spec it also long-polls the gateway's ``/ale/stop``: when the
gateway stops the trial (budget, a refused key, a failing upstream), it kills the CLI's
process group (TERM, then KILL) and exits, whatever the provider's own ``kill_all`` can
reach; the reason goes to stderr, so into the agent's log.
"""

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

PLACEHOLDER = "@ALE_BASE_URL@"


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def serve(client, socket_path):
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(socket_path)
    except OSError as exc:
        sys.stderr.write(f"ale relay: cannot reach the gateway at {socket_path}: {exc}\n")
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def relay(server, socket_path):
    while True:
        try:
            client, _ = server.accept()
        except OSError:
            return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(client, socket_path), daemon=True).start()


def start_relay(socket_path):
    """Listen on a free loopback port, relaying to ``socket_path``; return the base URL."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(256)
    threading.Thread(target=relay, args=(server, socket_path), daemon=True).start()
    return "http://127.0.0.1:{}".format(server.getsockname()[1])  # noqa: UP032 - any python3


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        http.client.HTTPConnection.__init__(self, "ale-gateway")
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def watch_stop(socket_path, token, proc):
    """Wait for the gateway to stop the trial; then end the CLI's process group and exit."""
    try:
        connection = UnixHTTPConnection(socket_path)
        connection.request("GET", "/ale/stop", headers={"x-api-key": token})
        answer = connection.getresponse()
        reason = answer.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return
    if answer.status != 200 or proc.poll() is not None:
        return
    sys.stderr.write("ale launcher: the model gateway stopped the agent: {}\n".format(reason))  # noqa: UP032
    sys.stderr.flush()
    STOPPING.set()
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 3.0)):
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + wait
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    os._exit(STOPPED)  # the CLI's stdout may still be held open by something it left


#: the launcher's exit status when the gateway stopped the agent
STOPPED = 125
STOPPING = threading.Event()


def main():
    with open(sys.argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    base = start_relay(spec["socket"])

    def fill(text):
        text = text.replace(PLACEHOLDER, base)
        return os.path.expanduser(text) if text.startswith("~/") else text

    for path, content in spec.get("files", {}).items():
        path = os.path.expanduser(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(fill(content))
    env = dict(os.environ)
    env.update({k: fill(v) for k, v in spec.get("env", {}).items()})
    argv = [fill(a) for a in spec["argv"]]
    with open(spec["log"], "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            cwd=spec.get("cwd"),
            env=env,
            start_new_session=bool(spec.get("token")),
        )
        if spec.get("token"):
            watcher = threading.Thread(target=watch_stop, args=(spec["socket"], spec["token"], proc))
            watcher.daemon = True
            watcher.start()
        for line in proc.stdout:
            log.write(line)
            log.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
        code = proc.wait()
        return STOPPED if STOPPING.is_set() else code


if __name__ == "__main__":
    sys.exit(main())
