"""Minute-resolution reservations per host and per pool: concurrency and bandwidth."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import numpy as np

from orchestrator.planner.model import Host, Pool

MINUTE = timedelta(minutes=1)


class Timeline:
    """Counts of running jobs per minute for each host and pool, and reserved bytes/s per pool."""

    def __init__(self, start: datetime, minutes: int, hosts: Iterable[Host], pools: Iterable[Pool]) -> None:
        self.start = start
        self.minutes = minutes
        self.host_limit = {h.id: h.max_concurrent for h in hosts}
        self.pool_limit = {p.id: p.max_concurrent for p in pools}
        self.pool_bw = {p.id: p.bandwidth for p in pools}
        self.host_load = {h: np.zeros(minutes, dtype=np.int32) for h in self.host_limit}
        self.pool_load = {p: np.zeros(minutes, dtype=np.int32) for p in self.pool_limit}
        self.pool_rate = {p: np.zeros(minutes, dtype=np.float64) for p, bw in self.pool_bw.items() if bw}

    def index(self, at: datetime) -> int:
        return int((at - self.start) // MINUTE)

    def at(self, index: int) -> datetime:
        return self.start + index * MINUTE

    def blocked(self, host: str, rates: Mapping[str, float], lo: int, hi: int) -> np.ndarray:
        """Minutes in [lo, hi) where one more job of this host and pools would break a limit."""
        mask = self.host_load[host][lo:hi] >= self.host_limit[host]
        for pool, rate in rates.items():
            mask |= self.pool_load[pool][lo:hi] >= self.pool_limit[pool]
            bandwidth = self.pool_bw[pool]
            if bandwidth:
                mask |= self.pool_rate[pool][lo:hi] + rate > bandwidth * (1 + 1e-9)
        return mask

    def feasible_starts(
        self, host: str, rates: Mapping[str, float], lo: int, hi: int, length: int
    ) -> np.ndarray:
        """Start minutes s in [lo, hi] such that [s, s + length) is free everywhere it must be."""
        hi = min(hi, self.minutes - length)
        if hi < lo:
            return np.empty(0, dtype=np.int64)
        mask = self.blocked(host, rates, lo, hi + length)
        sums = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
        free = (sums[length:] - sums[:-length]) == 0
        return np.flatnonzero(free) + lo

    def reserve(self, host: str, rates: Mapping[str, float], start: int, length: int) -> None:
        lo, hi = max(start, 0), min(start + length, self.minutes)
        if hi <= lo:
            return
        if host in self.host_load:
            self.host_load[host][lo:hi] += 1
        for pool, rate in rates.items():
            if pool in self.pool_load:
                self.pool_load[pool][lo:hi] += 1
            if pool in self.pool_rate:
                self.pool_rate[pool][lo:hi] += rate
