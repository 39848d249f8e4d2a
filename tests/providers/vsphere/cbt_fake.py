"""Changed-block tracking at the SOAP layer, which the simulator lacks.

govmomi's simulator gives every disk ``changeId`` None and does not implement
``QueryChangedDiskAreas``. This wraps the driver's session stub: every other call goes to
the running simulator; ``QueryChangedDiskAreas`` is answered from a SOAP response written
by hand after the vSphere Web Services API reference, deserialized by pyVmomi exactly as a
vCenter's answer would be:

- VirtualMachine.QueryChangedDiskAreas(snapshot, deviceKey, startOffset, changeId) returns a
  ``DiskChangeInfo``: ``startOffset`` and ``length`` of the part of the disk it describes, and
  ``changedArea``, a list of ``DiskChangeExtent`` (``start``, ``length``) in bytes; a caller
  asks again from ``startOffset + length`` until the disk's capacity.
  https://developer.broadcom.com/xapis/vsphere-web-services-api/latest/vim.VirtualMachine.html#queryChangedDiskAreas
  https://developer.broadcom.com/xapis/vsphere-web-services-api/latest/vim.VirtualMachine.DiskChangeInfo.html
- A change id vCenter no longer accepts (tracking reset) is refused with a ``FileFault``.
- A quiesced snapshot of a VM whose VMware Tools do not run is refused with
  ``ToolsUnavailable`` (``refuse_quiesce``).

The disks' ``backing.changeId`` is set on the simulator's answers to property reads, as a
vCenter with tracking on reports it for a snapshot's disks.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from pyVmomi import SoapAdapter, vim

ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" '
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
)


def changed_areas_response(start: int, length: int, areas: list[tuple[int, int]]) -> bytes:
    extents = "".join(f"<changedArea><start>{s}</start><length>{n}</length></changedArea>" for s, n in areas)
    body = (
        '<QueryChangedDiskAreasResponse xmlns="urn:vim25"><returnval>'
        f"<startOffset>{start}</startOffset><length>{length}</length>{extents}"
        "</returnval></QueryChangedDiskAreasResponse>"
    )
    return ENVELOPE.format(body=body).encode()


def fault_response(fault: str, message: str, fields: str = "") -> bytes:
    body = (
        "<soapenv:Fault><faultcode>ServerFaultCode</faultcode>"
        f"<faultstring>{message}</faultstring>"
        f'<detail><{fault}Fault xmlns="urn:vim25" xsi:type="{fault}">{fields}</{fault}Fault></detail>'
        "</soapenv:Fault>"
    )
    return ENVELOPE.format(body=body).encode()


def refuse_quiesce(stub: Any) -> Callable[[], None]:
    """Answer quiesced snapshots as vCenter does for a VM whose VMware Tools do not run
    (``ToolsUnavailable``); returns the undo."""
    real = stub.InvokeMethod

    def invoke(mo: Any, info: Any, args: Any, outerStub: Any = None) -> Any:
        if info.wsdlName == "CreateSnapshot_Task" and args[3]:
            message = "Cannot complete operation because VMware Tools is not running in this virtual machine."
            raise _deserialize(stub, fault_response("ToolsUnavailable", message), info)
        return real(mo, info, args, outerStub)

    stub.InvokeMethod = invoke
    return lambda: setattr(stub, "InvokeMethod", real)


class ChangeTracking:
    """What the fake vCenter answers: the disks' current change id and, per change id asked
    for (and disk key, where disks differ), the areas changed since (as of the current
    snapshot)."""

    def __init__(self) -> None:
        self.change_id = "52 3e 1a 7d 0c 44 9b 21-8f 66 02 d5 e0 17 4a c3/1"
        self.changed: dict[str | tuple[str, int], list[tuple[int, int]]] = {}
        self.refused: set[str] = set()
        self.queries: list[dict[str, Any]] = []
        # The disk is described in two parts, as a vCenter may: the caller must ask again.
        self.part = 0


def install(stub: Any, tracking: ChangeTracking) -> Callable[[], None]:
    """Wrap ``stub.InvokeMethod``; returns the undo."""
    real = stub.InvokeMethod

    def invoke(mo: Any, info: Any, args: Any, outerStub: Any = None) -> Any:
        if info.wsdlName == "QueryChangedDiskAreas":
            snapshot, key, start, change_id = args
            tracking.queries.append({"device_key": key, "start": start, "change_id": change_id})
            if change_id in tracking.refused:
                message = f"change id {change_id} is not valid"
                fault = _deserialize(
                    stub, fault_response("FileFault", message, f"<file>{message}</file>"), info
                )
                raise fault
            capacity = _capacity(mo, snapshot, key)
            end = capacity if tracking.part == 0 or start > 0 else min(capacity, tracking.part)
            since = tracking.changed.get((change_id, key), tracking.changed.get(change_id, []))
            areas = [(s, n) for s, n in since if start <= s < end]
            return _deserialize(stub, changed_areas_response(start, end - start, areas), info)
        result = real(mo, info, args, outerStub)
        if info.wsdlName in ("RetrieveContents", "RetrieveProperties"):
            for item in result or ():
                for prop in item.propSet:
                    _stamp(prop.val, tracking.change_id)
        return result

    stub.InvokeMethod = invoke
    return lambda: setattr(stub, "InvokeMethod", real)


def _deserialize(stub: Any, response: bytes, info: Any) -> Any:
    return SoapAdapter.SoapResponseDeserializer(stub).Deserialize(io.BytesIO(response), info.result)


def _stamp(value: Any, change_id: str) -> None:
    if isinstance(value, list):
        for device in value:
            if isinstance(device, vim.vm.device.VirtualDisk):
                device.backing.changeId = change_id


def _capacity(vm: Any, snapshot: Any, key: int) -> int:
    disk = next(d for d in snapshot.config.hardware.device if d.key == key)
    return int(disk.capacityInKB) * 1024
