"""A bounded least-recently-used mapping: the one memo used by the oracle, the SDR compile cache
and the channel cache (each bounded so that long sweeps and training runs keep their memory)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class LRU:
    """``get`` refreshes an entry; ``put`` evicts the least recently used beyond ``maxsize``."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("LRU maxsize must be >= 1")
        self.maxsize = int(maxsize)
        self._data: OrderedDict = OrderedDict()

    def get(self, key: Hashable, default: Any = None) -> Any:
        try:
            value = self._data[key]
        except KeyError:
            return default
        self._data.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def items(self) -> list:
        """(key, value) pairs, least recently used first (a snapshot)."""
        return list(self._data.items())

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)
