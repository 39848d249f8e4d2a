"""The typed configuration readers every driver checks its settings with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.domain.errors import InvalidArgument
from providers.config import Fields

CONFIG = Fields(
    {
        "on": True,
        "n": 8,
        "t": 2.5,
        "name": "root",
        "mode": "auto",
        "dir": "/srv/repo",
        "cmd": "virsh 'dom frozen'",
        "enc": {"cipher": "x"},
    },
    "config.",
)


def test_settings_are_read_typed_with_defaults_for_absent_ones() -> None:
    assert CONFIG.flag("on") is True
    assert CONFIG.flag("absent") is False
    assert CONFIG.flag("absent", True) is True
    assert CONFIG.integer("n", 1, 1, 64) == 8
    assert CONFIG.number("t", 1.0, above=0) == 2.5
    assert CONFIG.number("n", 1.0, at_least=0) == 8.0
    assert CONFIG.text("name", "x", re.compile(r"^\w+$"), "a name") == "root"
    assert CONFIG.choice("mode", ("auto", "direct")) == "auto"
    assert CONFIG.absolute_path("dir") == Path("/srv/repo")
    assert CONFIG.absolute_path("absent") is None
    assert CONFIG.command("cmd") == ("virsh", "dom frozen")
    assert CONFIG.command("absent") == ()
    assert CONFIG.typed("n", int, None) == 8
    assert CONFIG.typed("absent", list, None) is None


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda f: f.flag("n"), "config.n: must be true or false, got 8"),
        (lambda f: f.integer("n", 1, 1, 4), "config.n: must be a whole number from 1 to 4, got 8"),
        (lambda f: f.integer("on", 1, 1, 4, what="a count"), "config.on: must be a count, got True"),
        (lambda f: f.number("name", 1.0), "config.name: must be a number, got 'root'"),
        (lambda f: f.number("t", 1.0, above=3), "config.t: must be > 3, got 2.5"),
        (lambda f: f.number("t", 1.0, at_least=3), "config.t: must be ≥ 3, got 2.5"),
        (lambda f: f.number("t", 1.0, above=3, what="seconds > 3"), "config.t: must be seconds > 3, got 2.5"),
        (lambda f: f.choice("mode", ("a", "b")), "config.mode: must be one of ('a', 'b'), got 'auto'"),
        (
            lambda f: f.choice("mode", ("a", "b"), shown="a, b"),
            "config.mode: must be one of a, b, got 'auto'",
        ),
        (lambda f: f.absolute_path("n"), "config.n: must be a path, got 8"),
        (lambda f: f.absolute_path("name"), "config.name: must be an absolute path, got 'root'"),
        (lambda f: f.absolute_path("x", required=" here"), "config.x: is required here"),
        (lambda f: f.required("x"), "config.x: is required"),
        (lambda f: f.command("n"), "config.n: must be a command line (a string or a list of strings), got 8"),
        (lambda f: f.typed("on", int, None), "config.on: expected int, got True"),
        (lambda f: f.typed("name", (int, float), 0.0), "config.name: expected int or float, got 'root'"),
        (
            lambda f: f.section("enc").choice("cipher", ("c",)),
            "config.enc.cipher: must be one of ('c',), got 'x'",
        ),
    ],
)
def test_a_bad_setting_is_refused_naming_it(read, message) -> None:
    with pytest.raises(InvalidArgument) as caught:
        read(CONFIG)
    assert caught.value.message == message
    assert caught.value.field == message.split(": ", 1)[0]


def test_timeouts_refuse_nan() -> None:
    with pytest.raises(InvalidArgument, match="must be > 0, got nan"):
        Fields({"t": float("nan")}).number("t", 1.0, above=0)


@pytest.mark.parametrize("line", ["echo x >> /tmp/f", "fsfreeze -f /data && sync", "a | b", "cmd; other"])
def test_a_command_line_with_shell_syntax_is_refused_as_it_would_do_nothing(line: str) -> None:
    with pytest.raises(InvalidArgument, match="runs without a shell") as err:
        Fields({"freeze_command": line}, "config.").command("freeze_command")
    assert err.value.field == "config.freeze_command"


def test_shell_syntax_is_fine_inside_an_explicit_shell_or_a_quoted_argument() -> None:
    fields = Fields({"a": 'sh -c "echo x >> /tmp/f"', "b": ["sh", "-c", "a | b"]}, "config.")
    assert fields.command("a") == ("sh", "-c", "echo x >> /tmp/f")
    assert fields.command("b") == ("sh", "-c", "a | b")
