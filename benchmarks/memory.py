"""Peak resident memory of a piece of work, sampled in a background thread (CPU runs)."""

import threading
import time

import psutil


class PeakMemory:
    """with PeakMemory() as peak: ...; peak.mib is the peak RSS above the level at entry, in MiB."""

    def __enter__(self):
        self._process = psutil.Process()
        self._start = self._peak = self._process.memory_info().rss
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self._peak = max(self._peak, self._process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        self.mib = (self._peak - self._start) / 2**20
