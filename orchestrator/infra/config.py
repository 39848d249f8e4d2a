"""Settings from the environment. With nothing set, everything lives in one data directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from orchestrator.domain.errors import InvalidArgument


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    # First retry of a failed job waits this long, doubling with each attempt.
    retry_base_seconds: float = 30.0
    # How long a worker holds a job without a heartbeat before the reconciler hands it to
    # another; workers renew it every third of this.
    lease_seconds: int = 60
    # A job held back by a full host or pool is offered again after about this long.
    defer_seconds: float = 5.0
    # A queued job whose message the broker no longer holds is re-sent after this grace;
    # any queued job is re-sent after ``redeliver_seconds`` whatever the broker says.
    lost_message_grace_seconds: float = 10.0
    redeliver_seconds: float = 900.0
    # How long a worker keeps retrying a database write while the database is unreachable.
    db_retry_seconds: float = 120.0
    # Each connected host is discovered again this often (0: never by itself), so VMs a
    # restore or another tool rebuilt are re-linked without anyone asking.
    rediscover_seconds: float = 3600.0
    # Celery broker for the distributed mode; None runs jobs in process.
    broker_url: str | None = None
    # A signed request must carry signatureversion=3 and an ``expires`` time: without them a
    # captured URL can be replayed for ever. Off only for clients that cannot send them.
    signature_v3_required: bool = True
    # How far ahead ``expires`` may lie. cs and CloudMonkey sign for 600 s by default, so a
    # longer-lived URL is one somebody made to keep.
    signature_max_lifetime_seconds: float = 600.0
    # The API's /metrics answers only ``Authorization: Bearer <token>`` when this is set.
    metrics_token: str | None = None

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("BACKUP_HOME") or platformdirs.user_data_dir("backup-orchestrator"))
        url = env.get("BACKUP_DATABASE_URL") or f"sqlite:///{home / 'orchestrator.db'}"
        return cls(
            home=home,
            database_url=url,
            retry_base_seconds=float(env.get("BACKUP_RETRY_BASE_SECONDS", 30.0)),
            lease_seconds=int(env.get("BACKUP_LEASE_SECONDS", 60)),
            defer_seconds=float(env.get("BACKUP_DEFER_SECONDS", 5.0)),
            lost_message_grace_seconds=float(env.get("BACKUP_LOST_MESSAGE_GRACE_SECONDS", 10.0)),
            redeliver_seconds=float(env.get("BACKUP_REDELIVER_SECONDS", 900.0)),
            db_retry_seconds=float(env.get("BACKUP_DB_RETRY_SECONDS", 120.0)),
            rediscover_seconds=float(env.get("BACKUP_REDISCOVER_SECONDS", 3600.0)),
            broker_url=env.get("BACKUP_BROKER_URL") or None,
            signature_v3_required=_flag(env, "BACKUP_SIGNATURE_V3_REQUIRED", True),
            signature_max_lifetime_seconds=float(env.get("BACKUP_SIGNATURE_MAX_LIFETIME_SECONDS", 600.0)),
            metrics_token=env.get("BACKUP_METRICS_TOKEN") or None,
        )


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE + _FALSE:
        return value in _TRUE
    raise InvalidArgument(f"{name} must be one of {', '.join(_TRUE + _FALSE)}, got {value!r}", field=name)
