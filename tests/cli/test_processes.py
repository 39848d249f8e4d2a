"""What ``worker`` and ``dispatcher`` share: a metrics port, on the address the operator picks."""

from __future__ import annotations

import pytest
import requests

from api.cli.processes import serve_metrics
from tests.cli.test_serve import free_port


def test_the_metrics_port_listens_only_on_the_address_given():
    port = free_port()
    server = serve_metrics(port, None, "127.0.0.1")
    try:
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
        # Another address of this machine (all of 127/8 is loopback on Linux) is not served.
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.2:{port}/metrics", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
