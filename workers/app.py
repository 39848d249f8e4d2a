"""The Celery application, configured from the same settings as everything else, and how
long each kind of job may run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery

from orchestrator.domain.errors import InvalidArgument
from orchestrator.domain.models import JobKind
from orchestrator.infra.config import Settings

TASK_NAME = "backup_orchestrator.run_job"

# How long one attempt of a job may run before the worker stops it (soft limit; the hard
# limit kills the process five minutes later and the reconciler takes over).
TIME_LIMITS = {
    JobKind.BACKUP: timedelta(hours=12),
    JobKind.RESTORE_VM: timedelta(hours=12),
    JobKind.RESTORE_VOLUME: timedelta(hours=12),
    JobKind.VERIFY: timedelta(hours=12),
    JobKind.DELETE_BACKUP: timedelta(hours=1),
    JobKind.PRUNE: timedelta(hours=2),
    JobKind.INGEST: timedelta(hours=1),
}
HARD_LIMIT_GRACE = timedelta(minutes=5)

# How messages travel; the queue benchmark's bare Celery baseline uses the same.
DELIVERY_SETTINGS: dict[str, Any] = {
    # A job is acknowledged only when it ended, and given back when its worker process
    # dies: the broker keeps it until someone has run it.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # One job at a time per process: a long backup never sits behind another one.
    "worker_prefetch_multiplier": 1,
    "task_create_missing_queues": True,
    # Outcomes live in the jobs table, not in a result backend.
    "task_ignore_result": True,
    "task_serializer": "json",
    "accept_content": ["json"],
    "broker_connection_retry_on_startup": True,
    # Redis hands an unacknowledged message to another worker after this long; a job
    # running longer is then claimed by nobody (its row says running), so it is harmless.
    "broker_transport_options": {"visibility_timeout": 6 * 3600},
    "worker_hijack_root_logger": False,
}


def make_app(settings: Settings) -> Celery:
    """The app that publishes jobs; a worker registers its task on it (``workers.tasks``)."""
    if not settings.broker_url:
        raise InvalidArgument(
            "BACKUP_BROKER_URL is not set: the distributed mode needs a broker (Redis or RabbitMQ)"
        )
    app = Celery("backup_orchestrator", broker=settings.broker_url, set_as_current=False)
    app.conf.update(DELIVERY_SETTINGS, task_default_queue="default")
    return app
