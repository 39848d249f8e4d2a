"""Large PropertyCollector reads, parsed with ElementTree instead of pyVmomi's object model.

pyVmomi turns every element of an answer into a typed object through Python callbacks, some
microseconds each. Reading the VMs of a 1,000-VM vCenter with their device lists is about
180,000 elements: seconds of CPU for that alone, more than the per-VM walk's round trips save
on a near vCenter. Here the request is the RetrievePropertiesEx pyVmomi would send, posted with
the session's cookie on the connection's own TLS settings (certificate verified as for every
call), and the answer is parsed by the C ElementTree parser. Callers read the plain elements
(``Props``); a value's vSphere type is resolved to pyVmomi's class when a subclass test is
needed (``is_a``).

Faults come back as vSphere says them: an expired session as ``vim.fault.NotAuthenticated``
(so the session logs in again), any other as a ``ProviderError`` naming the fault.
"""

from __future__ import annotations

import http.client
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from pyVmomi import VmomiSupport, vim

from orchestrator.domain.errors import ProviderError
from providers.vsphere.connection import VCenterSession

VIM = "urn:vim25"
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
)

# One object's properties: each asked path → its <val> element (absent when unset).
Props = dict[str, ET.Element]


def tag(name: str) -> str:
    return f"{{{VIM}}}{name}"


def xsi_type(element: ET.Element) -> str:
    """The element's vSphere type name (``VirtualDisk``, ``xsd:int``...), else its tag."""
    return element.get(XSI_TYPE) or element.tag.rsplit("}", 1)[-1]


@cache
def find_class(name: str) -> type[Any] | None:
    """pyVmomi's class for the vSphere type ``name``, if it has one."""
    try:
        return VmomiSupport.GetWsdlType(VIM, name)
    except KeyError:
        return None


def vim_class(name: str) -> type[Any]:
    """pyVmomi's class for the vSphere type ``name``."""
    found = find_class(name)
    if found is None:
        raise ProviderError(f"vSphere has no type {name}", retryable=False)
    return found


def is_a(element: ET.Element, cls: type[Any]) -> bool:
    """Whether the element's vSphere type is ``cls`` or a subclass of it."""
    found = find_class(xsi_type(element))
    return found is not None and issubclass(found, cls)


_PREFIX = len(tag(""))


def fields(element: ET.Element | None) -> dict[str, ET.Element]:
    """An object's fields by name (a data object's children), for many reads of one object."""
    return {c.tag[_PREFIX:]: c for c in element} if element is not None else {}


@cache
def _path(names: tuple[str, ...]) -> str:
    return "/".join(map(tag, names))


def child(element: ET.Element | None, *path: str) -> ET.Element | None:
    if element is None or not path:
        return element
    return element.find(_path(path))


def text(element: ET.Element | None, *path: str) -> str | None:
    found = child(element, *path)
    return found.text if found is not None else None


def number(element: ET.Element | None, *path: str) -> int | None:
    value = text(element, *path)
    return int(value) if value not in (None, "") else None


def flag(element: ET.Element | None, *path: str) -> bool | None:
    value = text(element, *path)
    return None if value is None else value == "true"


def retrieve(
    session: VCenterSession,
    content: vim.ServiceInstanceContent,
    view: vim.view.ContainerView,
    wanted: Mapping[str, Sequence[str]],
) -> Iterator[tuple[str, str, Props]]:
    """(type, moref, properties) of every object in ``view`` of the ``wanted`` vSphere types
    (type name → property paths): one RetrievePropertiesEx, continued while vCenter pages it."""
    collector = content.propertyCollector._moId
    this = f'<_this type="PropertyCollector">{escape(collector)}</_this>'
    props = "".join(
        f"<propSet><type>{escape(kind)}</type>{''.join(map(_path_set, paths))}</propSet>"
        for kind, paths in wanted.items()
    )
    objects = (
        f'<objectSet><obj type="ContainerView">{escape(view._moId)}</obj><skip>true</skip>'
        '<selectSet xsi:type="TraversalSpec"><name>view</name><type>ContainerView</type>'
        "<path>view</path><skip>false</skip></selectSet></objectSet>"
    )
    action = f"urn:vim25/{content.about.apiVersion}"
    answer = _call(
        session,
        action,
        f'<RetrievePropertiesEx xmlns="{VIM}">{this}<specSet>{props}{objects}</specSet>'
        "<options><maxObjects>500</maxObjects></options></RetrievePropertiesEx>",
    )
    while answer is not None:
        for obj in answer.iterfind(tag("objects")):
            ref = obj.find(tag("obj"))
            if ref is None or not ref.text:
                continue  # every object names itself; nothing to describe otherwise
            found: Props = {}
            for prop in obj.iterfind(tag("propSet")):
                name, val = prop.find(tag("name")), prop.find(tag("val"))
                if name is not None and name.text and val is not None:
                    found[name.text] = val
            yield ref.get("type") or "", ref.text, found
        token = text(answer, "token")
        answer = (
            _call(
                session,
                action,
                f'<ContinueRetrievePropertiesEx xmlns="{VIM}">{this}<token>{escape(token)}</token>'
                "</ContinueRetrievePropertiesEx>",
            )
            if token
            else None
        )


def _path_set(path: str) -> str:
    return f"<pathSet>{escape(path)}</pathSet>"


def _call(session: VCenterSession, action: str, body: str) -> ET.Element | None:
    """The ``returnval`` of one SOAP call (None when the answer has none)."""
    s = session.settings
    conn = http.client.HTTPSConnection(s.host, s.port, context=s.ssl_context(), timeout=s.timeout_seconds)
    try:
        conn.request(
            "POST",
            urlsplit(s.url).path,
            _ENVELOPE.format(body=body).encode(),
            {
                "Cookie": session.cookie(),
                "SOAPAction": action,
                "Content-Type": "text/xml; charset=utf-8",
            },
        )
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status not in (200, 500):
        raise http.client.HTTPException(f"{response.status} {response.reason}")
    return returnval(s.host, data)


def returnval(host: str, data: bytes) -> ET.Element | None:
    """The ``returnval`` of a SOAP answer from vCenter ``host``; its fault raised."""
    if b"<!DOCTYPE" in data:
        # SOAP forbids document types; entity expansion (an XML bomb) and external entities
        # need one. Without it the C parser is safe, and several times faster than defusedxml's.
        raise ProviderError(f"vCenter {host}: its answer carries a document type, refused", retryable=False)
    root = ET.fromstring(data)  # noqa: S314 - refused above when it declares anything
    body_element = root.find(f"{SOAP}Body")
    fault = body_element.find(f"{SOAP}Fault") if body_element is not None else None
    if fault is not None:
        raise _fault(host, fault)
    answer = body_element[0] if body_element is not None and len(body_element) else None
    return answer.find(tag("returnval")) if answer is not None else None


def _fault(host: str, fault: ET.Element | None) -> Exception:
    detail = fault.find("detail") if fault is not None else None
    kind = xsi_type(detail[0]) if detail is not None and len(detail) else "SystemError"
    message = (fault.findtext("faultstring") if fault is not None else None) or ""
    if kind.startswith("NotAuthenticated"):
        return vim.fault.NotAuthenticated()
    named = f"{kind.removesuffix('Fault')}{f': {message}' if message else ''}"
    return ProviderError(f"vCenter {host}: reading the inventory: {named}", retryable=False)
