"""Parsers for the CLI's compact option syntax."""

from __future__ import annotations

import re
from typing import Any

import click

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_RANGE = re.compile(
    r"^(?:(?P<days>[a-z,]+)@)?(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})$", re.IGNORECASE
)


def size(text: str) -> int:
    """``10G``, ``512M``, ``1TiB`` or plain bytes (binary units)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a size such as 10G or 512M")
    unit = (match[2] or "").upper()[:1]
    return int(float(match[1]) * _UNITS[unit])


def volume(text: str) -> dict[str, Any]:
    """``pool=P,size=10G[,type=ROOT][,path=/x.qcow2][,format=qcow2][,name=N]``."""
    fields: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise click.BadParameter(f"{part!r} in --volume is not key=value")
        fields[key.strip()] = value.strip()
    if "size" in fields:
        fields["size"] = size(fields["size"])
    return fields


def time_range(text: str) -> dict[str, Any]:
    """``[mon,tue@]20:00-06:00``: a daily span, optionally only starting on some days."""
    match = _RANGE.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a range such as 20:00-06:00 or sat,sun@00:00-24:00")
    out: dict[str, Any] = {"start": match["start"], "end": match["end"]}
    if match["days"]:
        out["days"] = match["days"].split(",")
    return out
