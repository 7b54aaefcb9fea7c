"""Peak resident memory of this process while a block runs (used by generation.py and notebook 06).

A measuring tool of the benchmarks, not part of the library: ``with PeakMemory() as mem: ...`` then
``mem.peak_mb``. Needs ``psutil``.
"""
from __future__ import annotations

import threading


class PeakMemory:
    """Context manager: the peak resident memory (RSS, MB) of this process while it is active.

    Samples ``psutil.Process().memory_info().rss`` every ``interval`` seconds in a thread (the whole
    process: interpreter, torch and data included). ``peak_mb`` holds the result.
    """

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak_mb = interval, float("nan")
        self._stop = threading.Event()

    @staticmethod
    def rss_mb() -> float:
        import psutil

        return psutil.Process().memory_info().rss / 2**20

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self.rss_mb())

    def __enter__(self) -> "PeakMemory":
        self.peak_mb = self.rss_mb()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.rss_mb())
        return False


