"""Every group, command and option of ``backupctl`` says what it is for in ``--help``."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from api.cli.main import cli

# Options that carry their help from a shared helper or from click itself.
EXEMPT = {"--json", "--help"}


def walk(cmd: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from walk(sub, (*path, name))


TREE = list(walk(cli))
IDS = [" ".join(path) or "backupctl" for path, _ in TREE]


def test_the_tree_is_walked() -> None:
    names = {" ".join(path) for path, _ in TREE}
    assert {"", "key revoke", "offering import", "provider disable", "schedule create", "serve"} <= names


@pytest.mark.parametrize(("path", "cmd"), TREE, ids=IDS)
def test_every_group_and_command_has_help(path: tuple[str, ...], cmd: click.Command) -> None:
    assert (cmd.help or "").strip(), f"backupctl {' '.join(path)} has no help text"


@pytest.mark.parametrize(("path", "cmd"), TREE, ids=IDS)
def test_every_option_has_help(path: tuple[str, ...], cmd: click.Command) -> None:
    missing = [
        p.opts[0]
        for p in cmd.params
        if isinstance(p, click.Option) and p.opts[0] not in EXEMPT and not (p.help or "").strip()
    ]
    assert not missing, f"backupctl {' '.join(path)}: options without help: {missing}"


def test_no_default_goes_unshown() -> None:
    """An option with a real default (not a flag, not unset) shows it in its help."""
    unshown = [
        f"{' '.join(path)} {p.opts[0]}"
        for path, cmd in TREE
        for p in cmd.params
        if isinstance(p, click.Option)
        and not p.is_flag
        and not p.multiple
        and isinstance(p.default, str | int | float)  # not unset (a sentinel in newer click)
        and p.default != ""
        and not p.show_default
    ]
    assert not unshown


def help_of(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # as one line: wrapping differs with the width


def test_key_revoke_takes_the_key_or_its_id() -> None:
    text = help_of("key", "revoke")
    assert "KEY_OR_ID" in text
    assert "as the API key itself or as its id" in text


def test_offering_import_explains_the_sla_format() -> None:
    text = help_of("offering", "import")
    assert "[DAYS@]HH:MM-HH:MM" in text
    assert "90m, 6h, 1d12h" in text
    assert "can never meet" in text
    assert "is refused" in text
    assert "--zone TEXT Zone of the offering (name or id). [required]" in text


def test_provider_disable_says_what_happens_to_what_uses_it() -> None:
    text = help_of("provider", "disable")
    assert "Its offerings, the VMs assigned to them and its restore points stay" in text
    assert "provider enable" in text


def test_units_formats_and_defaults() -> None:
    assert "K/M/G/T (binary), e.g. 500M" in help_of("pool", "register")
    assert "[default: 4]" in help_of("pool", "register")
    assert "1 = Sunday" in help_of("schedule", "create")
    assert "[default: UTC]" in help_of("schedule", "create")
    assert "[default: user]" in help_of("account", "create")
    assert "--account TEXT Account the key is for (name or id). [required]" in help_of("key", "create")
