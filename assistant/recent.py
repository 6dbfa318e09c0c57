"""The most recently used results of a pure function of text, shared by a process's threads.

Many people send the same words (the page's quick replies, "What do I need to bring?"): the embedder, the safety
classifier and the red-flag rules remember what they computed for the texts they saw last instead of computing it
again. Only immutable values go in (read-only arrays, tuples, frozen sets and dataclasses): every reader shares them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")
RECENT_TEXTS = 4096  # texts (or keys of them) each cache keeps: a day's quick replies many times over


class Recent(Generic[Key, Value]):
    """At most `size` values (never None: `get` answers None for a key it does not hold); the least recently used
    is forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.values: OrderedDict[Key, Value] = OrderedDict()

    def get(self, key: Key) -> Value | None:
        with self.lock:
            value = self.values.get(key)
            if value is not None:
                self.values.move_to_end(key)
            return value

    def put(self, key: Key, value: Value) -> None:
        with self.lock:
            self.values[key] = value
            self.values.move_to_end(key)
            while len(self.values) > self.size:
                self.values.popitem(last=False)
