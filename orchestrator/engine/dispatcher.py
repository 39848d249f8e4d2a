"""The dispatcher's service loop: one leader at a time delivers due jobs every round and runs
the planning round every ``tick_seconds``. The round itself (schedules, SLA release,
re-planning) is a use case handed in by the entry point that starts the loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from orchestrator.engine.core import Core
from orchestrator.engine.delivery import deliver_due
from orchestrator.engine.leader import LeaderLock
from orchestrator.infra import telemetry

log = logging.getLogger(__name__)

# One planning round; ``more_due`` in its report asks for the next round at once.
Round = Callable[[Core], Mapping[str, int | bool]]
MORE_DUE = "sla_release_pending"


def run_dispatcher(
    core: Core, round_: Round, tick_seconds: float, deliver_every: float, stop: threading.Event
) -> None:
    """Until ``stop``: deliver due jobs every round, plan every ``tick_seconds``, while leading."""
    lock = LeaderLock(core)
    next_tick = 0.0
    leading = False
    try:
        while not stop.is_set():
            if lock.hold() != leading:
                leading = not leading
                log.info("dispatcher %s", "leading" if leading else "standing by: another one leads")
            telemetry.DISPATCHER_LEADER.set(1 if leading else 0)
            if leading:
                try:
                    if time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + tick_seconds
                        result = round_(core)
                        log.info("round: %s", result)
                        if result.get(MORE_DUE):
                            next_tick = 0.0  # more planned jobs due: release on in the next round
                    else:
                        deliver_due(core)
                    telemetry.DISPATCHER_ROUNDS.inc()
                except Exception:
                    log.exception("dispatcher round failed; next round in %ss", deliver_every)
            stop.wait(deliver_every)
    finally:
        lock.release()
        telemetry.DISPATCHER_LEADER.set(0)
