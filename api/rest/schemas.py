"""The REST face's request and response schemas: they validate requests, shape answers, and
are what the OpenAPI document is generated from.

Request schemas check types and bounds the database imposes (lengths, integer widths, no
NUL characters); the use cases check meaning. Response schemas list every field a client
gets, so nothing outside them (a provider's secrets, say) can leak into an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from orchestrator.domain.models import (
    BackupOrigin,
    BackupStatus,
    BackupType,
    Hypervisor,
    IntervalType,
    JobKind,
    JobState,
    Role,
    VMState,
    VolumeType,
)
from orchestrator.domain.validate import NAME_LENGTH, TEXT_LENGTH
from orchestrator.infra.paging import DEFAULT_PAGESIZE, MAX_PAGESIZE
from orchestrator.usecases.inventory import LIVE_VM_STATES
from orchestrator.usecases.schedules import MAX_BACKUPS_LIMIT

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
MAX_PAGE = 1_000_000
ID_LENGTH = 36
JSON_DEPTH = 16
NO_NUL = validate.Regexp(r"^[^\x00]*$", error="must not contain NUL characters")


def _values(enum: Any) -> list[str]:
    return [m.value for m in enum]


def text(*, max_length: int = NAME_LENGTH, min_length: int = 0, **kw: Any) -> fields.String:
    return fields.String(validate=[validate.Length(min=min_length, max=max_length), NO_NUL], **kw)


def ident(description: str, **kw: Any) -> fields.String:
    """A reference to an object by id (or, where the use case allows, by name)."""
    return text(min_length=1, metadata={"description": description}, **kw)


def count(*, maximum: int = INT32_MAX, minimum: int = 0, **kw: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=minimum, max=maximum), **kw)


def one_of(enum: Any, **kw: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(_values(enum)), **kw)


def timestamp(**kw: Any) -> fields.String:
    return fields.String(metadata={"format": "date-time"}, **kw)


class JsonObject(fields.Dict):
    """A free-form JSON object, bounded in depth and free of NUL characters."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        out = super()._deserialize(value, attr, data, **kwargs)
        stack: list[tuple[Any, int]] = [(out, 1)]
        while stack:
            item, depth = stack.pop()
            if depth > JSON_DEPTH:
                raise ma.ValidationError(f"nested deeper than {JSON_DEPTH} levels")
            if isinstance(item, str) and "\x00" in item:
                raise ma.ValidationError("must not contain NUL characters")
            if isinstance(item, Mapping):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            elif isinstance(item, list):
                stack.extend((v, depth + 1) for v in item)
        return out


class Strict(ma.Schema):
    """A request: unknown fields refused. A zone is named ``zone`` (its id or name) in every
    request and ``zone_id`` in every response; a request may say ``zone_id`` for ``zone``, so
    a client can send back what it read."""

    class Meta:
        unknown = ma.RAISE
        ordered = True

    @ma.pre_load
    def _zone_id_is_zone(self, data: Any, **_: Any) -> Any:
        if "zone" not in self.fields or not isinstance(data, Mapping) or ZONE_ALIAS not in data:
            return data
        values = dict(data)
        alias = values.pop(ZONE_ALIAS)
        if "zone" in values and values["zone"] != alias:
            raise ma.ValidationError(
                f"zone {values['zone']!r} and {ZONE_ALIAS} {alias!r} differ: give one of them", ZONE_ALIAS
            )
        values["zone"] = alias
        return values


ZONE_ALIAS = "zone_id"
ZONE = f"Zone id or name ({ZONE_ALIAS} is accepted too)."


# -- paging ------------------------------------------------------------------------------------


class PageQuery(Strict):
    page = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=MAX_PAGE), metadata={"description": "From 1."}
    )
    pagesize = fields.Integer(
        load_default=DEFAULT_PAGESIZE,
        validate=validate.Range(min=1, max=MAX_PAGESIZE),
        metadata={"description": f"Items per page, at most {MAX_PAGESIZE}."},
    )


def page_of(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    return ma.Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item), required=True),
            "total": fields.Integer(required=True, metadata={"description": "Items over all pages."}),
            "page": fields.Integer(required=True),
            "pagesize": fields.Integer(required=True),
        },
        name=name,
    )


# -- errors ------------------------------------------------------------------------------------


class Error(ma.Schema):
    error = fields.String(
        required=True,
        metadata={"description": "A code: invalid_argument, authentication_failed, not_found, ..."},
    )
    message = fields.String(required=True, metadata={"description": "What went wrong, for a human."})
    field = fields.String(metadata={"description": "The request field at fault, when there is one."})


# -- accounts and keys -------------------------------------------------------------------------


class Account(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    role = one_of(Role, required=True)
    state = fields.String(
        required=True,
        validate=validate.OneOf(["enabled", "disabled"]),
        metadata={"description": "A disabled account's keys do not authenticate."},
    )
    created = timestamp(required=True, allow_none=True)


class Enabled(Strict):
    enabled = fields.Boolean(required=True)


class ApiKeyQuery(PageQuery):
    account = text(metadata={"description": "Only this account's keys (id or name); users see their own."})


class ApiKey(ma.Schema):
    id = fields.String(required=True)
    account = fields.String(required=True)
    account_id = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(["active", "disabled", "revoked"]))
    created = timestamp(required=True, allow_none=True)


# -- inventory ---------------------------------------------------------------------------------


class ZoneQuery(PageQuery):
    keyword = text(metadata={"description": "Part of the zone's name."})


class ZoneCreate(Strict):
    name = text(required=True, min_length=1)
    description = text(max_length=TEXT_LENGTH, load_default="")


class Zone(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)


class ZonedQuery(PageQuery):
    zone = text(metadata={"description": ZONE})
    keyword = text(metadata={"description": "Part of the name."})


class HostCreate(Strict):
    zone = ident(ZONE, required=True)
    name = text(required=True, min_length=1)
    hypervisor = one_of(Hypervisor, required=True)
    address = text(load_default="")
    max_concurrent_backups = count(minimum=1, load_default=2)


class Host(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    zone_id = fields.String(required=True)
    hypervisor = one_of(Hypervisor, required=True)
    address = fields.String(required=True)
    max_concurrent_backups = fields.Integer(required=True)
    connection = fields.Dict(
        required=True, metadata={"description": "How workers reach the host (no secrets: key auth only)."}
    )


class HostUpdate(Strict):
    name = text(min_length=1)
    address = text()
    max_concurrent_backups = count(minimum=1)


class ConnectedHost(Host):
    warnings = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "What this machine cannot confirm, e.g. a key file that is not here."},
    )


class HostConnection(Strict):
    connection = JsonObject(
        required=True,
        metadata={
            "description": 'For KVM: {"transport": "ssh", "address", "port", "username", "key_file", '
            '"known_hosts", "accept_new_host_key", "libvirt_uri"} or {"transport": "local"}. For a vCenter '
            '(hypervisor vmware): {"url", "username", "password", "datacenter", "cluster", "ca_file", '
            '"timeout_seconds"}; the password is stored sealed and shown as ********, which sent back '
            "keeps it."
        },
    )


class VMImport(Strict):
    uuid = ident("The hypervisor's UUID of the VM (from a discovery).", required=True)
    account = ident("Account (id or name) that will own the VM.", required=True)
    name = text(min_length=1, metadata={"description": "Name in the inventory (default: the hypervisor's)."})


class PoolCreate(Strict):
    zone = ident(ZONE, required=True)
    name = text(required=True, min_length=1)
    path = text(
        max_length=TEXT_LENGTH,
        load_default="",
        metadata={"description": "Absolute mount path on the hosts (not /); volumes lie inside it."},
    )
    max_concurrent_backups = count(minimum=1, load_default=4)
    bandwidth_bytes_per_s = count(minimum=1, maximum=INT64_MAX, load_default=None, allow_none=True)


class PoolUpdate(Strict):
    name = text(min_length=1)
    path = text(max_length=TEXT_LENGTH, metadata={"description": "Where new volumes go; existing ones stay."})
    max_concurrent_backups = count(minimum=1)
    bandwidth_bytes_per_s = count(
        minimum=1,
        maximum=INT64_MAX,
        allow_none=True,
        metadata={"description": "Bytes per second; null: no limit."},
    )


class Pool(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    zone_id = fields.String(required=True)
    path = fields.String(required=True)
    max_concurrent_backups = fields.Integer(required=True)
    bandwidth_bytes_per_s = fields.Integer(required=True, allow_none=True)


class VolumeSpec(Strict):
    pool = ident("Storage pool id or name, in the VM's zone.", required=True)
    size = count(minimum=1, maximum=INT64_MAX, required=True, metadata={"description": "Bytes."})
    type = one_of(VolumeType, metadata={"description": "Default: ROOT for the first volume."})
    path = text(
        max_length=TEXT_LENGTH,
        metadata={"description": "Absolute image path, inside the pool's path when it has one."},
    )
    format = fields.String(validate=validate.OneOf(["raw", "qcow2", "vmdk"]))
    name = text()


class Volume(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    vm_id = fields.String(required=True, allow_none=True)
    pool_id = fields.String(required=True)
    type = one_of(VolumeType, required=True)
    device_id = fields.Integer(required=True)
    size = fields.Integer(required=True)
    path = fields.String(required=True)
    format = fields.String(required=True)


class VolumeQuery(PageQuery):
    type = one_of(VolumeType)


class VMQuery(PageQuery):
    zone = text(metadata={"description": ZONE})
    account = text(metadata={"description": "Account id or name (admins only; users see their own)."})
    offering_id = text(metadata={"description": "VMs under this backup offering."})
    keyword = text(metadata={"description": "Part of the VM's name."})


class VMCreate(Strict):
    name = text(required=True, min_length=1)
    account = ident("Owner: account id or name.", required=True)
    zone = ident(ZONE, required=True)
    host = text(metadata={"description": "Host id or name, in the zone."})
    volumes = fields.List(fields.Nested(VolumeSpec), required=True, validate=validate.Length(min=1, max=64))
    id = text(max_length=ID_LENGTH, min_length=1, metadata={"description": "Keep the cloud's own id."})
    state = one_of(VMState, load_default=VMState.RUNNING.value)
    details = JsonObject(keys=fields.String(validate=validate.Length(max=NAME_LENGTH)))


class VMUpdate(Strict):
    state = one_of(
        LIVE_VM_STATES,
        metadata={
            "description": "Stopped or Running, as the VM was stopped or started in the cloud; an "
            "in-place restore of a Running VM is refused unless it is asked to stop it."
        },
    )


class VM(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    account_id = fields.String(required=True)
    account = fields.String(required=True)
    zone_id = fields.String(required=True)
    host_id = fields.String(required=True, allow_none=True)
    state = one_of(VMState, required=True)
    backup_offering_id = fields.String(required=True, allow_none=True)
    backup_offering = fields.String(required=True, allow_none=True)
    volumes = fields.List(fields.Nested(Volume), required=True)
    created = timestamp(required=True, allow_none=True)


# -- providers and offerings -------------------------------------------------------------------


class ProviderCreate(Strict):
    name = text(required=True, min_length=1)
    driver = text(required=True, min_length=1, max_length=64, metadata={"description": "e.g. dummy, nas."})
    zone = text(metadata={"description": f"{ZONE} None: every zone."})
    config = JsonObject(keys=fields.String(validate=validate.Length(max=NAME_LENGTH)), load_default=dict)
    enabled = fields.Boolean(load_default=True)


class ProviderUpdate(Strict):
    name = text(min_length=1)
    zone = text(metadata={"description": 'Zone id or name; "" serves every zone.'})
    config = JsonObject(
        keys=fields.String(validate=validate.Length(max=NAME_LENGTH)),
        metadata={
            "description": "The whole new configuration, checked by the driver; a secret given as "
            "******** keeps its stored value."
        },
    )
    enabled = fields.Boolean()


class Provider(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    driver = fields.String(required=True)
    zone_id = fields.String(required=True, allow_none=True)
    enabled = fields.Boolean(required=True)
    config = fields.Dict(required=True, metadata={"description": "Secrets are shown as ********."})
    capabilities = fields.List(fields.String(), metadata={"description": "What the driver can do."})
    untracked_copies = fields.Integer(
        required=True,
        allow_none=True,
        metadata={
            "description": "Copies its back end held that no restore point records, at its last "
            "reconcile (null: never reconciled)."
        },
    )
    reconciled_at = timestamp(required=True, allow_none=True)


class UntrackedCopy(ma.Schema):
    external_id = fields.String(required=True)
    restore_point_id = fields.String(required=True)
    vm_id = fields.String(required=True)
    why = fields.String(required=True)


class Reconcile(ma.Schema):
    provider = fields.Nested(Provider, required=True)
    listed = fields.Integer(required=True, metadata={"description": "Copies the back end holds."})
    in_flight = fields.Integer(
        required=True, metadata={"description": "Copies of restore points still being backed up."}
    )
    untracked = fields.List(fields.Nested(UntrackedCopy), required=True)
    released = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "What interrupted backups had left on the hosts (e.g. snapshots), removed."},
    )


class ProviderOfferingQuery(PageQuery):
    zone = text(metadata={"description": f"{ZONE} Default: the provider's zone."})


class ProviderOffering(ma.Schema):
    external_id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)


class TimeRange(Strict):
    start = text(required=True, max_length=8, metadata={"description": "HH:MM, local time."})
    end = text(required=True, max_length=8, metadata={"description": "HH:MM; 24:00 ends a day."})
    days = fields.List(
        text(max_length=16),
        validate=validate.Length(min=1, max=7),
        metadata={"description": "mon..sun; default: every day."},
    )


RPO_HELP = "Restore point objective: a duration such as 30m, 6h, 1d12h (minimum 15m)."


class OfferingFields(Strict):
    description = text(max_length=TEXT_LENGTH)
    rpo = text(max_length=64, metadata={"description": RPO_HELP})
    timezone = text(max_length=64, metadata={"description": "IANA name, e.g. Europe/Berlin."})
    windows = fields.List(fields.Nested(TimeRange), validate=validate.Length(max=64))
    blackouts = fields.List(fields.Nested(TimeRange), validate=validate.Length(max=64))
    retention_count = count(metadata={"description": "Keep the last N restore points."})
    keep_daily = count()
    keep_weekly = count()
    keep_monthly = count()
    allow_user_driven_backups = fields.Boolean()


class OfferingCreate(OfferingFields):
    name = text(required=True, min_length=1)
    zone = ident(ZONE, required=True)
    provider = ident("Provider id or name.", required=True)
    external_id = ident("The provider's own offering id.", required=True)
    rpo = text(required=True, max_length=64, metadata={"description": RPO_HELP})


class OfferingUpdate(OfferingFields):
    name = text(min_length=1)


class OfferingQuery(PageQuery):
    zone = text(metadata={"description": ZONE})
    keyword = text(metadata={"description": "Part of the offering's name."})


class Offering(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    zone_id = fields.String(required=True)
    provider_id = fields.String(required=True)
    provider = fields.String(required=True)
    external_id = fields.String(required=True)
    rpo = fields.String(required=True)
    rpo_seconds = fields.Integer(required=True)
    retention_count = fields.Integer(required=True, allow_none=True)
    keep_daily = fields.Integer(required=True, allow_none=True)
    keep_weekly = fields.Integer(required=True, allow_none=True)
    keep_monthly = fields.Integer(required=True, allow_none=True)
    timezone = fields.String(required=True)
    windows = fields.List(fields.Dict(), required=True)
    blackouts = fields.List(fields.Dict(), required=True)
    allow_user_driven_backups = fields.Boolean(required=True)
    created = timestamp(required=True, allow_none=True)


# -- assignments and schedules -----------------------------------------------------------------


class Assignment(Strict):
    offering_id = ident("The backup offering to put the VM under.", required=True)
    forced = fields.Boolean(
        load_default=False,
        metadata={"description": "Accept that the old provider deletes the VM's restore points."},
    )


class ForcedQuery(Strict):
    forced = fields.Boolean(load_default=False)


SCHEDULE_HELP = "MM (HOURLY), MM:HH (DAILY), MM:HH:DD (WEEKLY, 1 = Sunday; MONTHLY, 1-28)."


class ScheduleCreate(Strict):
    vm_id = ident("The VM to back up.", required=True)
    interval_type = one_of(IntervalType, required=True)
    schedule = text(required=True, max_length=32, metadata={"description": SCHEDULE_HELP})
    timezone = text(max_length=64, load_default="UTC")
    max_backups = count(
        maximum=MAX_BACKUPS_LIMIT, load_default=0, metadata={"description": "Restore points kept; 0: all."}
    )


class ScheduleUpdate(Strict):
    schedule = text(max_length=32, metadata={"description": SCHEDULE_HELP})
    timezone = text(max_length=64)
    max_backups = count(maximum=MAX_BACKUPS_LIMIT)


class ScheduleQuery(PageQuery):
    vm_id = text(metadata={"description": "Schedules of this VM."})
    interval_type = one_of(IntervalType)


class Schedule(ma.Schema):
    id = fields.String(required=True)
    vm_id = fields.String(required=True)
    vm_name = fields.String(required=True)
    interval_type = one_of(IntervalType, required=True)
    schedule = fields.String(required=True)
    timezone = fields.String(required=True)
    max_backups = fields.Integer(required=True)
    next_run = timestamp(required=True, allow_none=True)


# -- backups, restores, jobs -------------------------------------------------------------------


class BackupCreate(Strict):
    vm_id = ident("The VM to back up.", required=True)
    idempotency_key = text(
        min_length=1, metadata={"description": "Repeat a request safely: the same key answers the same job."}
    )


class BackupQuery(PageQuery):
    vm_id = text(metadata={"description": "Restore points of this VM (also a destroyed one)."})
    zone = text(metadata={"description": ZONE})
    account = text(metadata={"description": "Account id or name (admins only)."})
    offering_id = text()
    status = one_of(BackupStatus)
    keyword = text(metadata={"description": "Part of the VM's name."})
    include_removed = fields.Boolean(load_default=False)


class BackupVolume(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    type = fields.String(required=True)
    device_id = fields.Integer(required=True)
    size = fields.Integer(required=True)
    path = fields.String(required=True)
    format = fields.String(required=True)
    pool_id = fields.String(required=True)


class FailedVolume(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    device_id = fields.Integer(required=True)
    error = fields.String(required=True)


class Backup(ma.Schema):
    id = fields.String(required=True)
    vm_id = fields.String(required=True)
    vm_name = fields.String(required=True)
    account_id = fields.String(required=True)
    zone_id = fields.String(required=True)
    offering_id = fields.String(required=True)
    offering = fields.String(required=True)
    provider_id = fields.String(required=True)
    origin = one_of(BackupOrigin, required=True)
    schedule_id = fields.String(required=True, allow_none=True)
    external_id = fields.String(required=True, allow_none=True)
    type = one_of(
        BackupType,
        required=True,
        metadata={
            "description": "What a restore needs: FULL needs no other point, INCREMENTAL its parent "
            "(and the parent's). Decided when the point is queued; a point left without a parent is FULL."
        },
    )
    parent_id = fields.String(required=True, allow_none=True)
    logical_size = fields.Integer(
        required=True, metadata={"description": "Bytes it restores: the sizes of the VM's volumes."}
    )
    stored_size = fields.Integer(
        required=True,
        metadata={"description": "New bytes it added at the back end (after deduplication and compression)."},
    )
    status = one_of(BackupStatus, required=True)
    date = timestamp(required=True, allow_none=True)
    completed = timestamp(required=True, allow_none=True)
    volumes = fields.List(fields.Nested(BackupVolume), required=True)
    failed_volumes = fields.List(
        fields.Nested(FailedVolume),
        required=True,
        metadata={"description": "Of a PartiallyFailed point: the volumes it lacks, and why."},
    )
    error = fields.String(required=True, allow_none=True)


class VolumeRestore(Strict):
    volume_id = ident("A volume recorded in the restore point.", required=True)
    vm_id = ident("The VM to attach the restored volume to (same zone).", required=True)


class VmRestore(Strict):
    stop = fields.Boolean(
        load_default=False,
        metadata={"description": "Have the provider stop a running VM first (capability stop_vm)."},
    )


class NewVmRestore(Strict):
    name = text(min_length=1, required=True, metadata={"description": "Name of the new VM."})
    host = ident("Host to run it on (name or id, same zone); default: the original's host.")


class PlanQuery(Strict):
    hours = fields.Integer(
        load_default=24, validate=validate.Range(min=1, max=24 * 14), metadata={"description": "Horizon."}
    )
    fresh = fields.Boolean(
        load_default=False, metadata={"description": "A dry plan made now instead of the stored one."}
    )
    pool_id = ident("Only the jobs of this pool.")


class PlannedJob(ma.Schema):
    vm_id = fields.String(required=True)
    vm_name = fields.String(required=True, allow_none=True)
    offering_id = fields.String(required=True)
    queue = fields.String(required=True)
    pool_name = fields.String(required=True, allow_none=True)
    start = timestamp(required=True)
    end = timestamp(required=True)
    deadline = timestamp(required=True)
    late = fields.Boolean(required=True)
    lateness_s = fields.Float(required=True)
    reason = fields.String(required=True)


class Unplaceable(ma.Schema):
    vm_id = fields.String(required=True)
    vm_name = fields.String(required=True, allow_none=True)
    reason = fields.String(required=True)


class PlanView(ma.Schema):
    jobs = fields.List(fields.Nested(PlannedJob), required=True)
    late = fields.Integer(required=True)
    unplaceable = fields.List(fields.Nested(Unplaceable), required=True)


class CapacityQuery(Strict):
    nights = fields.Integer(
        load_default=3,
        validate=validate.Range(min=1, max=31),
        metadata={"description": "Nights from tonight."},
    )


class CapacityView(ma.Schema):
    """The report as ``backupctl capacity --json`` prints it."""

    feasible = fields.Boolean(required=True)
    failure_tolerant = fields.Boolean(required=True)
    nights = fields.List(fields.Dict(), required=True)
    offerings = fields.List(fields.Dict(), required=True)
    misses = fields.List(fields.Dict(), required=True)


class JobQuery(PageQuery):
    state = one_of(JobState)
    kind = one_of(JobKind)
    subject_id = text(metadata={"description": "Jobs about this object (e.g. a backup id)."})


class Progress(ma.Schema):
    done = fields.Integer(required=True, metadata={"description": "Bytes (or steps) done."})
    total = fields.Integer(required=True, metadata={"description": "0 while unknown."})


class Job(ma.Schema):
    id = fields.String(required=True)
    kind = one_of(JobKind, required=True)
    state = one_of(JobState, required=True)
    account_id = fields.String(required=True)
    subject_type = fields.String(required=True)
    subject_id = fields.String(required=True)
    queue = fields.String(required=True)
    attempts = fields.Integer(required=True)
    max_attempts = fields.Integer(required=True)
    not_before = timestamp(required=True, allow_none=True)
    deadline = timestamp(required=True, allow_none=True)
    reason = fields.String(required=True, allow_none=True)
    progress = fields.Nested(Progress, required=True)
    result = fields.Dict(required=True, allow_none=True)
    error = fields.String(required=True, allow_none=True)
    worker = fields.String(required=True, allow_none=True, metadata={"description": "Who runs it now."})
    cancel_requested = timestamp(required=True, allow_none=True)
    created = timestamp(required=True, allow_none=True)
    started = timestamp(required=True, allow_none=True)
    finished = timestamp(required=True, allow_none=True)


class JobLogEntry(ma.Schema):
    at = timestamp(required=True)
    level = fields.String(required=True, validate=validate.OneOf(("info", "warning", "error")))
    message = fields.String(required=True)


AccountPage = page_of(Account, "AccountPage")
ApiKeyPage = page_of(ApiKey, "ApiKeyPage")
ZonePage = page_of(Zone, "ZonePage")
HostPage = page_of(Host, "HostPage")
PoolPage = page_of(Pool, "PoolPage")
VMPage = page_of(VM, "VMPage")
VolumePage = page_of(Volume, "VolumePage")
ProviderPage = page_of(Provider, "ProviderPage")
ProviderOfferingPage = page_of(ProviderOffering, "ProviderOfferingPage")
OfferingPage = page_of(Offering, "OfferingPage")
SchedulePage = page_of(Schedule, "SchedulePage")
BackupPage = page_of(Backup, "BackupPage")
JobPage = page_of(Job, "JobPage")
