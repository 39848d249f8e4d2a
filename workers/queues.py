"""Which queues a worker consumes, and following the inventory as pools and hosts appear."""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from sqlalchemy import or_, select

from orchestrator.domain.errors import NotFound
from orchestrator.domain.models import Host, StoragePool
from orchestrator.engine.core import Core
from orchestrator.engine.routing import DEFAULT_QUEUE, INGEST_QUEUE, host_queue, pool_queue

log = logging.getLogger(__name__)

# How often a ``--all`` worker looks for new pools and hosts.
FOLLOW_SECONDS = 30.0


def _resolve(core: Core, model: type[Host] | type[StoragePool], refs: list[str], what: str) -> list[str]:
    ids = []
    with core.db.session() as session:
        for ref in refs:
            found = session.scalars(select(model.id).where(or_(model.id == ref, model.name == ref))).all()
            if not found:
                raise NotFound(f"no {what} {ref!r} in the inventory")
            if len(found) > 1:
                raise NotFound(f"{len(found)} {what}s are named {ref!r}; give its id")
            ids.append(found[0])
    return ids


def chosen_queues(core: Core, pools: list[str], hosts: list[str], queues: list[str]) -> list[str]:
    """The default queue (work bound to no host or pool) and the chosen pools' and hosts'."""
    chosen = [DEFAULT_QUEUE]
    chosen += [pool_queue(i) for i in _resolve(core, StoragePool, pools, "storage pool")]
    chosen += [host_queue(i) for i in _resolve(core, Host, hosts, "host")]
    chosen += queues
    return list(dict.fromkeys(chosen))


def all_queues(core: Core) -> list[str]:
    with core.db.session() as session:
        pools = session.scalars(select(StoragePool.id).order_by(StoragePool.id)).all()
        hosts = session.scalars(select(Host.id).order_by(Host.id)).all()
    return [DEFAULT_QUEUE, INGEST_QUEUE, *map(pool_queue, pools), *map(host_queue, hosts)]


class FollowInventory(bootsteps.StartStopStep):
    """For ``--all`` workers: start consuming the queue of a pool or host added later."""

    requires = ("celery.worker.consumer.tasks:Tasks",)
    core: Core | None = None

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None

    def start(self, c: Any) -> None:
        self.timer_ref = c.timer.call_repeatedly(FOLLOW_SECONDS, self.refresh, (c,), priority=10)

    def stop(self, c: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def refresh(self, c: Any) -> None:
        assert self.core is not None
        try:
            wanted = all_queues(self.core)
        except Exception as exc:
            log.warning("could not read the inventory for new queues: %s", exc)
            return
        finally:
            # No pooled connection may outlive this call: pool processes fork from this one.
            self.core.db.engine.dispose()
        consuming = {q.name for q in c.task_consumer.queues}
        for queue in wanted:
            if queue not in consuming:
                log.info("consuming new queue %s", queue)
                c.add_task_queue(queue)
