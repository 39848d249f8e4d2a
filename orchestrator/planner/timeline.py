"""Minute-resolution reservations per host and per pool: concurrency and bandwidth.

A reservation is *firm* for a job's estimated length and may be followed by *room* for an
overrun. Room is kept clear for jobs placed where capacity allows (``room=True``), and given
up to a job that would otherwise miss its deadline (``room=False``): room for overruns never
costs another job its deadline.
"""

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
        # Room for overruns, on top of the firm load (created on first use).
        self.host_room: dict[str, np.ndarray] = {}
        self.pool_room: dict[str, np.ndarray] = {}
        self.pool_room_rate: dict[str, np.ndarray] = {}

    def index(self, at: datetime) -> int:
        return int((at - self.start) // MINUTE)

    def at(self, index: int) -> datetime:
        return self.start + index * MINUTE

    def blocked(
        self, host: str, rates: Mapping[str, float], lo: int, hi: int, room: bool = False
    ) -> np.ndarray:
        """Minutes in [lo, hi) where one more job of this host and pools would break a limit
        (``room``: counting the room kept for other jobs' overruns as taken)."""
        # Hosts and pools the planner was not told about set no limit.
        mask = np.zeros(max(hi - lo, 0), dtype=bool)
        if host in self.host_limit:
            load = self.host_load[host][lo:hi]
            if room and host in self.host_room:
                load = load + self.host_room[host][lo:hi]
            mask |= load >= self.host_limit[host]
        for pool, rate in rates.items():
            if pool not in self.pool_limit:
                continue
            load = self.pool_load[pool][lo:hi]
            if room and pool in self.pool_room:
                load = load + self.pool_room[pool][lo:hi]
            mask |= load >= self.pool_limit[pool]
            bandwidth = self.pool_bw[pool]
            if bandwidth:
                used = self.pool_rate[pool][lo:hi]
                if room and pool in self.pool_room_rate:
                    used = used + self.pool_room_rate[pool][lo:hi]
                mask |= used + rate > bandwidth * (1 + 1e-9)
        return mask

    def feasible_starts(
        self, host: str, rates: Mapping[str, float], lo: int, hi: int, length: int, room: bool = False
    ) -> np.ndarray:
        """Start minutes s in [lo, hi] such that [s, s + length) is free everywhere it must be."""
        hi = min(hi, self.minutes - length)
        if hi < lo:
            return np.empty(0, dtype=np.int64)
        mask = self.blocked(host, rates, lo, hi + length, room)
        sums = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
        free = (sums[length:] - sums[:-length]) == 0
        return np.flatnonzero(free) + lo

    def reserve(self, host: str, rates: Mapping[str, float], start: int, length: int, hold: int = 0) -> None:
        """Firm for [start, start + length), room for an overrun until ``start + hold``."""
        self._add(host, rates, start, start + length, self.host_load, self.pool_load, self.pool_rate)
        if hold > length:
            self._add(
                host, rates, start + length, start + hold, self.host_room, self.pool_room, self.pool_room_rate
            )

    def _add(
        self,
        host: str,
        rates: Mapping[str, float],
        start: int,
        end: int,
        hosts: dict[str, np.ndarray],
        pools: dict[str, np.ndarray],
        pool_rates: dict[str, np.ndarray],
    ) -> None:
        lo, hi = max(start, 0), min(end, self.minutes)
        if hi <= lo:
            return
        if host in self.host_limit:
            self._array(hosts, host, np.int32)[lo:hi] += 1
        for pool, rate in rates.items():
            if pool in self.pool_limit:
                self._array(pools, pool, np.int32)[lo:hi] += 1
            if self.pool_bw.get(pool):
                self._array(pool_rates, pool, np.float64)[lo:hi] += rate

    def _array(self, arrays: dict[str, np.ndarray], key: str, dtype: type) -> np.ndarray:
        found = arrays.get(key)
        if found is None:
            found = arrays[key] = np.zeros(self.minutes, dtype=dtype)
        return found
