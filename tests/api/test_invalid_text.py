"""Text that is not valid Unicode, or too long to search by, is a 4xx naming the field on
both HTTP faces, never a server error."""

from __future__ import annotations

import json

from api.app import create_app
from tests.api.rest_helpers import clients, error_of
from tests.api.test_cloudstack_protocol import call

JSON = {"Content-Type": "application/json"}


def _raw_get(world, path: str, query: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """A GET whose query holds bytes that are not UTF-8, handed over as a WSGI server such as
    gunicorn does (PEP 3333: the raw bytes as latin-1); the development server re-quotes them."""
    client = create_app(world.core).test_client()
    answer = client.get(path, headers=headers, environ_overrides={"QUERY_STRING": query.decode("latin-1")})
    return answer.status_code, answer.get_json()


def test_a_lone_surrogate_in_a_json_body_is_400_naming_the_field(server, world):
    api = clients(server)
    alice, admin = api["alice"], api["admin"]
    vm = {"name": "n", "account": "alice", "zone": "zone1", "volumes": [{"pool": "pool1", "size": 1}]}
    for who, path, body, field in [
        (alice, "/backups", '{"vm_id": "\\udfff"}', "vm_id"),
        (admin, "/zones", '{"name": "z\\ud800x"}', "name"),
        (admin, "/zones", '{"name": "z", "description": "\\ud800"}', "description"),
        (admin, "/vms", json.dumps({**vm, "volumes": [{"pool": "p\ud800", "size": 1}]}), "volumes[0].pool"),
        (admin, "/providers", '{"name": "p", "driver": "dummy", "config": {"k": "\\udc00"}}', "config.k"),
    ]:
        answer = who.call("POST", path, data=body.encode("utf-8", "surrogatepass"), headers=JSON)
        refused = error_of(answer, 400, "invalid_argument")
        assert refused["field"] == field, (path, refused)
        assert "not valid Unicode" in refused["message"]
    # Checking every string walks the body: as deep as the JSON parser goes is still a 400.
    for depth in (500, 900, 990):
        deep = "[" * depth + '"x"' + "]" * depth
        answer = admin.call("POST", "/zones", data=deep, headers=JSON)
        assert answer.status_code == 400, (depth, answer.text)
    # A surrogate pair is one valid character, not a lone surrogate.
    made = admin.ok("post", "/zones", 201, body={"name": "z\U0001f600"})
    assert made["name"] == "z\U0001f600"


def test_a_query_string_that_is_not_utf8_is_400(server, world):
    keys = server.keys["alice"]
    status, body = _raw_get(
        world,
        "/api/v1/backups",
        b"keyword=\xff\xfe",
        {"X-Api-Key": keys.apikey, "X-Api-Secret": keys.secretkey},
    )
    assert (status, body["error"]) == (400, "invalid_argument"), body
    assert "UTF-8" in body["message"]


def test_cloudstack_parameters_that_are_not_utf8_are_431(server, world):
    status, body = _raw_get(world, "/client/api", b"command=listBackups&keyword=\xff\xfe&response=json", {})
    assert status == 431, body
    assert body["errorresponse"]["errorcode"] == 431
    assert "UTF-8" in body["errorresponse"]["errortext"]


def test_a_cloudstack_keyword_longer_than_a_name_is_431_naming_it(server, world):
    for command, answer in [
        ("listBackups", "listbackupsresponse"),
        ("listVirtualMachines", "listvirtualmachinesresponse"),
    ]:
        response = call(server, "alice", method="post", command=command, keyword="x" * 100_000)
        assert response.status_code == 431, response.text
        error = response.json()[answer]
        assert error["errorcode"] == 431
        assert "Invalid parameter keyword: longer than 255 characters" in error["errortext"]
    # As long as a name may be is still a search.
    fits = call(server, "alice", command="listBackups", keyword="x" * 255)
    assert fits.status_code == 200, fits.text
