"""Names with control characters (a newline, a terminal escape, a bidi override) are refused
on every face: they would break tables and play on the terminals that show them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from api.cli.main import cli
from orchestrator.domain import validate
from orchestrator.domain.errors import InvalidArgument
from tests.api.rest_helpers import Rest, error_of
from tests.api.test_cloudstack_protocol import call

BAD = ["bad\nname", "z\x1b[31mred", "tab\tname", "evil\u202etxt.exe"]


@pytest.mark.parametrize("name", BAD)
def test_the_core_refuses_control_characters_in_names(name: str) -> None:
    with pytest.raises(InvalidArgument, match="control character"):
        validate.name(name)


def test_descriptions_keep_newlines_but_not_escapes() -> None:
    assert validate.text("two\nlines\tand a tab", "description") == "two\nlines\tand a tab"
    with pytest.raises(InvalidArgument, match="control character"):
        validate.text("z\x1b[31mred", "description")


@pytest.mark.parametrize("name", BAD)
def test_rest_answers_400_naming_the_field(server, world, name: str) -> None:
    body = error_of(Rest(server, "admin").post("/zones", {"name": name}), 400, "invalid_argument")
    assert body["field"] == "name"
    assert "control character" in body["message"]


def test_cloudstack_answers_431(server, world) -> None:
    response = call(
        server,
        "admin",
        command="importBackupOffering",
        zoneid=world.zone_id,
        externalid="dummy-gold",
        name="gold\x1b[2J",
        description="clears the screen",
    )
    assert response.status_code == 431
    assert "control character" in response.json()["importbackupofferingresponse"]["errortext"]


def test_the_cli_refuses_with_one_line(tmp_path) -> None:
    env = {"BACKUP_HOME": str(tmp_path), "BACKUP_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    runner = CliRunner()
    assert runner.invoke(cli, ["init"], env=env).exit_code == 0
    result = runner.invoke(cli, ["zone", "create", "bad\nname"], env=env)
    assert result.exit_code == 2
    assert "control character" in result.output
    listed = runner.invoke(cli, ["zone", "list", "--json"], env=env)
    assert listed.output.strip() == "[]"
