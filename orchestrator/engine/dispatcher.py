"""The dispatcher's service loop: one leader at a time delivers due jobs every round and runs
the planning round every ``tick_seconds``. The round itself (schedules, SLA release,
re-planning) is a use case handed in by the entry point that starts the loop.

A lease that expired while the database was away says nothing about its worker: nobody
could renew it. So after taking the lead (a PostgreSQL outage drops the lock with its
connection) or after a round failed, the dispatcher delivers at once but judges leases
only after one lease period and one retry step more, the time a live worker needs to
renew. Judging sooner runs the job a second time beside a worker that is still at it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from orchestrator.engine.core import Core
from orchestrator.engine.delivery import deliver_due
from orchestrator.engine.leader import LeaderLock
from orchestrator.infra import telemetry
from orchestrator.infra.db import RETRY_WAIT_MAX_SECONDS

log = logging.getLogger(__name__)

MORE_DUE = "sla_release_pending"


class Round(Protocol):
    """One planning round; ``MORE_DUE`` in its report asks for the next round at once, and
    ``reclaim`` says whether it may judge expired leases yet."""

    def __call__(self, core: Core, *, reclaim: bool) -> Mapping[str, int | bool]: ...


def run_dispatcher(
    core: Core, round_: Round, tick_seconds: float, deliver_every: float, stop: threading.Event
) -> None:
    """Until ``stop``: deliver due jobs every round, plan every ``tick_seconds``, while leading."""
    lock = LeaderLock(core)
    next_tick = 0.0
    leading = False
    settle = core.settings.lease_seconds + RETRY_WAIT_MAX_SECONDS
    judge_leases_at = 0.0
    try:
        while not stop.is_set():
            if lock.hold() != leading:
                leading = not leading
                log.info("dispatcher %s", "leading" if leading else "standing by: another one leads")
                judge_leases_at = time.monotonic() + settle
            telemetry.DISPATCHER_LEADER.set(1 if leading else 0)
            if leading:
                reclaim = time.monotonic() >= judge_leases_at
                if reclaim and judge_leases_at:
                    log.info("judging expired leases again")
                    judge_leases_at = 0.0
                try:
                    if time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + tick_seconds
                        result = round_(core, reclaim=reclaim)
                        log.info("round: %s", result)
                        if result.get(MORE_DUE):
                            next_tick = 0.0  # more planned jobs due: release on in the next round
                    else:
                        deliver_due(core, reclaim=reclaim)
                    telemetry.DISPATCHER_ROUNDS.inc()
                except Exception:
                    log.exception("dispatcher round failed; next round in %ss", deliver_every)
                    judge_leases_at = time.monotonic() + settle  # the database may have been away
            stop.wait(deliver_every)
    finally:
        lock.release()
        telemetry.DISPATCHER_LEADER.set(0)
