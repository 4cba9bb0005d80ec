"""A FAKE of the Compute Engine REST API, on loopback. Not Google's code, not an emulator.

No GCE emulator exists, so the ``gcp`` provider's control plane is tested against this
small stand-in for exactly the endpoints ``google-cloud-compute`` calls (REST transport):
instances insert / get / delete / aggregatedList and zone operations get / wait. It keeps
its state in memory (``instances``) so tests can check that nothing is left behind, and can
inject the failures real zones produce:

- ``capacity_zones``: inserts there finish with an operation error
  ``ZONE_RESOURCE_POOL_EXHAUSTED`` (how GCE reports a stock-out);
- ``quota_zones``: inserts there are refused at once with HTTP 403 ``quotaExceeded``.

Like the guest agent on a real image, an insert hands the ``ssh-keys`` metadata to
``on_ssh_key`` (the tests' loopback sshd authorizes it), so the data path is real SSH.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

PREFIX = r"^/compute/v1/projects/(?P<project>[^/]+)"
ROUTES = [
    ("POST", PREFIX + r"/zones/(?P<zone>[^/]+)/instances$", "insert"),
    ("GET", PREFIX + r"/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)$", "get"),
    ("DELETE", PREFIX + r"/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)$", "delete"),
    ("GET", PREFIX + r"/aggregated/instances$", "aggregated"),
    ("GET", PREFIX + r"/zones/(?P<zone>[^/]+)/operations/(?P<op>[^/]+)$", "operation"),
    ("POST", PREFIX + r"/zones/(?P<zone>[^/]+)/operations/(?P<op>[^/]+)/wait$", "operation"),
]


class FakeGce:
    """The fake's state and its HTTP server; ``url`` is the ``api_endpoint`` to use."""

    def __init__(self, on_ssh_key: Callable[[str], None] | None = None) -> None:
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.capacity_zones: set[str] = set()
        self.quota_zones: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self.on_ssh_key = on_ssh_key
        self.lock = threading.Lock()
        self._ids = itertools.count(1000)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _dispatch(self, method: str) -> None:
                path = urlparse(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                for verb, pattern, action in ROUTES:
                    match = re.match(pattern, path)
                    if verb == method and match:
                        with fake.lock:
                            fake.calls.append((action, path))
                            status, reply = getattr(fake, action)(body=body, **match.groupdict())
                        break
                else:
                    status, reply = 404, _error(404, f"fake GCE has no route {method} {path}", "notFound")
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_DELETE(self) -> None:
                self._dispatch("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeGce:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- endpoints ---------------------------------------------------------------------
    def _operation(self, project: str, zone: str, kind: str, target: str, error: str | None = None):
        number = next(self._ids)
        op_id = f"op-{number}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(number),
            "name": op_id,
            "zone": f"https://fake/compute/v1/projects/{project}/zones/{zone}",
            "operationType": kind,
            "targetLink": target,
            "status": "DONE",
            "progress": 100,
        }
        if error:
            op["error"] = {"errors": [{"code": error, "message": f"fake GCE: {error} in {zone}"}]}
            op["httpErrorStatusCode"] = 503
        self.operations[op_id] = op
        return 200, op

    def insert(self, project: str, zone: str, body: dict[str, Any]):
        name = body["name"]
        if zone in self.quota_zones:
            return 403, _error(
                403, f"Quota 'CPUS' exceeded. Limit: 0.0 in region of {zone}.", "quotaExceeded"
            )
        if zone in self.capacity_zones:
            return self._operation(project, zone, "insert", name, "ZONE_RESOURCE_POOL_EXHAUSTED")
        if (zone, name) in self.instances:
            return 409, _error(409, f"instance {name} already exists", "alreadyExists")
        n = next(self._ids)
        instance = {
            **body,
            "id": str(n),
            "kind": "compute#instance",
            "status": "RUNNING",
            "zone": f"https://fake/compute/v1/projects/{project}/zones/{zone}",
            "selfLink": f"https://fake/compute/v1/projects/{project}/zones/{zone}/instances/{name}",
        }
        for nic in instance.get("networkInterfaces", []) or [{}]:
            nic["networkIP"] = f"10.0.{n % 250}.{n % 200 + 2}"
            for access in nic.get("accessConfigs", []):
                access["natIP"] = f"34.1.{n % 250}.{n % 200 + 2}"
        self.instances[(zone, name)] = instance
        for item in body.get("metadata", {}).get("items", []):
            if item.get("key") == "ssh-keys" and self.on_ssh_key:
                for line in item["value"].splitlines():
                    self.on_ssh_key(line.partition(":")[2])
        return self._operation(project, zone, "insert", instance["selfLink"])

    def get(self, project: str, zone: str, name: str, body: Any):
        found = self.instances.get((zone, name))
        if found is None:
            return 404, _error(404, f"instance {name} not found", "notFound")
        return 200, found

    def delete(self, project: str, zone: str, name: str, body: Any):
        if self.instances.pop((zone, name), None) is None:
            return 404, _error(404, f"instance {name} not found", "notFound")
        return self._operation(project, zone, "delete", name)

    def aggregated(self, project: str, body: Any):
        items: dict[str, Any] = {}
        for (zone, _name), instance in self.instances.items():
            items.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(instance)
        return 200, {"kind": "compute#instanceAggregatedList", "items": items}

    def operation(self, project: str, zone: str, op: str, body: Any):
        found = self.operations.get(op)
        if found is None:
            return 404, _error(404, f"operation {op} not found", "notFound")
        return 200, found

    # -- helpers for tests ---------------------------------------------------------------
    def add_foreign(self, zone: str, name: str, labels: dict[str, str] | None = None) -> None:
        """An instance someone else made (the sweep must leave it alone)."""
        self.instances[(zone, name)] = {
            "name": name,
            "id": str(next(self._ids)),
            "status": "RUNNING",
            "labels": labels or {},
            "zone": f"zones/{zone}",
        }


def _error(code: int, message: str, reason: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "errors": [{"reason": reason, "message": message}]}}
