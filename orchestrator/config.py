"""Settings from the environment. With nothing set, everything lives in one data directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    # First retry of a failed job waits this long, doubling with each attempt.
    retry_base_seconds: float = 30.0
    # How long a worker holds a job before the reconciler may hand it to another.
    lease_seconds: int = 300

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
            lease_seconds=int(env.get("BACKUP_LEASE_SECONDS", 300)),
        )
