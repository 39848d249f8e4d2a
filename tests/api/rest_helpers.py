"""Calling the REST face of a live test server as admin, alice or bob."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from api.auth import EXPIRES_FORMAT, sign

PREFIX = "/api/v1"
FINAL_STATES = ("succeeded", "failed", "cancelled")


class Rest:
    """One caller, authenticated with its X-Api-Key/X-Api-Secret headers."""

    def __init__(self, server: Any, who: str | None) -> None:
        self.base = server.url + PREFIX
        self.headers: dict[str, str] = {}
        if who is not None:
            keys = server.keys[who]
            self.headers = {"X-Api-Key": keys.apikey, "X-Api-Secret": keys.secretkey}

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return requests.request(method, self.base + path, headers=headers, timeout=15, **kw)

    def get(self, path: str, params: dict[str, Any] | None = None) -> requests.Response:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any = None, params: dict[str, Any] | None = None) -> requests.Response:
        return self.call("POST", path, json=body, params=params)

    def put(self, path: str, body: Any = None) -> requests.Response:
        return self.call("PUT", path, json=body)

    def patch(self, path: str, body: Any = None) -> requests.Response:
        return self.call("PATCH", path, json=body)

    def delete(self, path: str, params: dict[str, Any] | None = None) -> requests.Response:
        return self.call("DELETE", path, params=params)

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        """The JSON answer of a call that must succeed with ``status``."""
        response = getattr(self, method)(path, **kw)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    def wait(self, job_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """Poll the job until it ends."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.ok("get", f"/jobs/{job_id}")
            if job["state"] in FINAL_STATES or time.monotonic() > deadline:
                return job
            time.sleep(0.05)

    def backed_up(self, vm_id: str) -> dict[str, Any]:
        """Take a backup of the VM and wait for it: the restore point."""
        job = self.wait(self.ok("post", "/backups", 202, body={"vm_id": vm_id})["id"])
        assert job["state"] == "succeeded", job
        return self.ok("get", f"/backups/{job['subject_id']}")


def clients(server: Any) -> dict[str, Rest]:
    return {who: Rest(server, who) for who in ("admin", "alice", "bob")}


def error_of(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    """The error body of a refused call, checked for its shape."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    assert set(body) <= {"error", "message", "field"}, body
    assert "Traceback" not in response.text
    return body


def expiring(minutes: int = 5) -> dict[str, str]:
    """What makes a signed request version 3, expiring in ``minutes``."""
    return {
        "signatureversion": "3",
        "expires": (datetime.now(UTC) + timedelta(minutes=minutes)).strftime(EXPIRES_FORMAT),
    }


def signed(server: Any, who: str, secret: str | None = None, **params: str) -> dict[str, str]:
    """Query parameters of a CloudStack-style signed request (version 3, expiring)."""
    keys = server.keys[who]
    out = {"apikey": keys.apikey, **expiring(), **params}
    out["signature"] = sign(out, secret or keys.secretkey)
    return out
