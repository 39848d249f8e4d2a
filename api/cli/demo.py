"""``backupctl demo``: a small cloud on the embedded default, end to end, narrated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from api import views
from api.cli.backup_cmd import BACKUP_COLUMNS
from api.cli.output import emit, human_bytes
from orchestrator.domain.errors import DomainError
from orchestrator.domain.models import Job
from orchestrator.engine.core import Core, Scope
from orchestrator.usecases import (
    accounts,
    assignments,
    backup_providers,
    backups,
    inventory,
    jobs,
    offerings,
    restores,
    schedules,
)

GiB = 2**30


def _step(text: str) -> None:
    click.secho(f"\n▶ {text}", bold=True)


def _refused(text: str, action: Callable[[], Any]) -> None:
    try:
        action()
    except DomainError as exc:
        click.secho(f"  refused as expected ({type(exc).__name__}): {exc.message}", fg="yellow")
    else:
        raise click.ClickException(f"demo expected a refusal: {text}")


def _summary(job: dict[str, Any]) -> str:
    result = job["result"] or {}
    if job["state"] != "succeeded":
        return job["error"] or job["state"]
    if "stored_size" in result:
        return (
            f"{result['type']} restore point {result['backup_id'][:8]} of "
            f"{human_bytes(result['logical_size'])}, {human_bytes(result['stored_size'])} stored"
        )
    if "volume_id" in result:
        return f"new volume {result['volume_id'][:8]} at {result['path']}"
    if "recreated" in result:
        return "VM recreated from the restore point" if result["recreated"] else "volumes written in place"
    return ", ".join(f"{k}={v}" for k, v in result.items())


def run_demo(core: Core) -> None:
    """Expects a freshly bootstrapped installation."""
    admin = accounts.admin_actor(core)

    def as_(actor: Any) -> Any:
        return core.scope(actor)

    def run(actor: Any, make: Callable[[Scope], Job]) -> dict[str, Any]:
        with as_(actor) as s:
            job_id = make(s).id
        with as_(actor) as s:
            job = views.job(jobs.show(s, job_id))
        mark = "✔" if job["state"] == "succeeded" else "✘"
        click.echo(f"  {mark} {job['kind']} job {job['id'][:8]} {job['state']}: {_summary(job)}")
        return job

    _step("Operator registers a zone, two KVM hosts, two storage pools and two tenants")
    with as_(admin) as s:
        inventory.create_zone(s, "zone-1", "demo zone")
        for h in ("kvm-01", "kvm-02"):
            inventory.create_host(s, zone="zone-1", name=h, hypervisor="kvm", max_concurrent_backups=2)
        inventory.create_pool(
            s, zone="zone-1", name="pool-a", path="/srv/pool-a", bandwidth_bytes_per_s=500 << 20
        )
        inventory.create_pool(
            s, zone="zone-1", name="pool-b", path="/srv/pool-b", bandwidth_bytes_per_s=300 << 20
        )
        for name in ("alice", "bob"):
            accounts.create_account(s, name)
        click.echo("  zone-1: kvm-01, kvm-02, pool-a (500 MiB/s), pool-b (300 MiB/s); accounts alice, bob")

    _step("Operator adds the dummy provider and looks at its own policies")
    with as_(admin) as s:
        provider = backup_providers.add(
            s,
            name="dummy",
            driver="dummy",
            config={
                "duration_s": 0.05,
                "capabilities": [
                    "incremental",
                    "delete_single_restore_point",
                    "restore_volume",
                    "restore_to_new_vm",
                    "verify",
                ],
            },
        )
        emit([views.provider_offering(o) for o in backup_providers.list_offerings(s, "dummy")], False)
        click.echo(f"  capabilities: {', '.join(sorted(c.value for c in s.driver(provider).capabilities))}")

    _step("Operator imports gold / silver / bronze with RPO, windows and blackouts")
    tiers = [
        ("gold", "dummy-gold", "4h", [], [], True),
        ("silver", "dummy-silver", "12h", [{"start": "18:00", "end": "08:00"}], [], True),
        (
            "bronze",
            "dummy-bronze",
            "1d",
            [{"start": "20:00", "end": "06:00"}],
            [{"start": "22:00", "end": "23:00"}],
            False,
        ),
    ]
    with as_(admin) as s:
        for name, ext, rpo, windows, blackouts, user_driven in tiers:
            offerings.import_offering(
                s,
                name=name,
                zone="zone-1",
                provider="dummy",
                external_id=ext,
                rpo=rpo,
                windows=windows,
                blackouts=blackouts,
                timezone="Europe/Berlin",
                retention_count=14,
                allow_user_driven_backups=user_driven,
            )
        emit(
            [views.offering(o) for o in offerings.list_offerings(s).items],
            False,
            ["name", "rpo", "windows", "blackouts", "allow_user_driven_backups"],
        )
        _refused(
            "an impossible RPO",
            lambda: offerings.import_offering(
                s,
                name="platinum",
                zone="zone-1",
                provider="dummy",
                external_id="dummy-gold",
                rpo="2h",
                windows=[{"start": "22:00", "end": "02:00"}],
            ),
        )

    _step("Operator registers three VMs with their volumes")
    with as_(admin) as s:
        web = inventory.register_vm(
            s,
            name="web-01",
            account="alice",
            zone="zone-1",
            host="kvm-01",
            volumes=[{"pool": "pool-a", "size": 20 * GiB}, {"pool": "pool-b", "size": 50 * GiB}],
        ).id
        db = inventory.register_vm(
            s,
            name="db-01",
            account="alice",
            zone="zone-1",
            host="kvm-02",
            volumes=[
                {"pool": "pool-a", "size": 20 * GiB},
                {"pool": "pool-b", "size": 200 * GiB},
                {"pool": "pool-b", "size": 100 * GiB},
            ],
        ).id
        app = inventory.register_vm(
            s,
            name="app-01",
            account="bob",
            zone="zone-1",
            host="kvm-02",
            volumes=[{"pool": "pool-a", "size": 40 * GiB}],
        ).id
    alice, bob = accounts.admin_actor(core, "alice"), accounts.admin_actor(core, "bob")

    _step("Tenants assign their VMs to offerings")
    with as_(alice) as s:
        assignments.assign(s, web, offerings.find(s, "gold").id)
        assignments.assign(s, db, offerings.find(s, "silver").id)
    with as_(bob) as s:
        assignments.assign(s, app, offerings.find(s, "bronze").id)
    click.echo("  web-01 → gold, db-01 → silver, app-01 → bronze")

    _step("alice backs up web-01 twice (a full, then an incremental) and db-01 once")
    run(alice, lambda s: backups.create_backup(s, web))
    run(alice, lambda s: backups.create_backup(s, web))
    run(alice, lambda s: backups.create_backup(s, db))

    _step("bob may not take ad-hoc backups on bronze, and cannot see alice's VMs")
    with as_(bob) as s:
        _refused("user-driven backup on bronze", lambda: backups.create_backup(s, app))
        _refused("another tenant's VM", lambda: backups.create_backup(s, web))

    _step("The operator backs up bob's app-01 for him (bronze leaves backups to the operator)")
    run(admin, lambda s: backups.create_backup(s, app))

    _step("alice keeps a daily schedule of her own for web-01 (02:30 Berlin time, keep 7)")
    with as_(alice) as s:
        sched = schedules.create(
            s, vm_id=web, interval_type="DAILY", schedule="30:02", timezone="Europe/Berlin", max_backups=7
        )
        click.echo(f"  next run: {sched.next_run_at:%Y-%m-%d %H:%M} UTC")

    _step("db-01 is destroyed by accident; alice restores it from its restore point")
    with as_(admin) as s:
        inventory.destroy_vm(s, db)
    with as_(alice) as s:
        db_point = backups.list_backups(s, vm_id=db).items[0].id
    run(alice, lambda s: restores.restore_vm(s, db_point))
    with as_(alice) as s:
        vm = inventory.show_vm(s, db)
        click.echo(f"  db-01 is back: state {vm.state.value}, {len(vm.live_volumes)} volumes")

    _step("alice restores web-01's data disk from its first restore point and attaches it to db-01")
    with as_(alice) as s:
        first = backups.list_backups(s, vm_id=web).items[-1]
        data_disk = first.vm_metadata["volumes"][1]["id"]
    run(alice, lambda s: restores.restore_volume(s, first.id, data_disk, db))

    _step(
        "A back end that cannot delete one restore point in the middle of a chain: the operator "
        'adds a second provider, "tape", and sells its weekly policy as offering "archive"; '
        "alice moves web-01 there, backs it up twice and deletes the chain"
    )
    with as_(admin) as s:
        backup_providers.add(
            s, name="tape", driver="dummy", config={"capabilities": ["incremental", "delete_chain"]}
        )
        offerings.import_offering(
            s, name="archive", zone="zone-1", provider="tape", external_id="dummy-bronze", rpo="1w"
        )
    with as_(alice) as s:
        assignments.change(s, web, offerings.find(s, "archive").id)
    run(alice, lambda s: backups.create_backup(s, web))
    run(alice, lambda s: backups.create_backup(s, web))
    with as_(alice) as s:
        full = backups.list_backups(s, vm_id=web, offering_id=offerings.find(s, "archive").id).items[-1].id
        _refused("deleting the full under an incremental", lambda: backups.delete_backup(s, full))
    run(alice, lambda s: backups.delete_backup(s, full, forced=True))

    _step("What alice sees now (backup list --all: the deleted chain shows as Expunged)")
    with as_(alice) as s:
        emit(
            [views.backup(b) for b in backups.list_backups(s, include_removed=True).items],
            False,
            [c for c in BACKUP_COLUMNS if c != "id"],
        )
