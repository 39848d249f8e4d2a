"""The SLA planner: pure functions over plain data (no database, no I/O)."""

from orchestrator.planner.model import VM, FixedJob, Host, Offering, Plan, PlannedJob, Pool, Unplaceable
from orchestrator.planner.planner import Planner, plan, slot_fraction

__all__ = [
    "VM",
    "FixedJob",
    "Host",
    "Offering",
    "Plan",
    "PlannedJob",
    "Planner",
    "Pool",
    "Unplaceable",
    "plan",
    "slot_fraction",
]
