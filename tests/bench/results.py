"""A bench's measurements: one JSON line printed per measurement, and all of them so far in one artifact file."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


class BenchResults:
    def __init__(self, path: str | Path, header: Callable[[], dict] = dict):
        self.path, self.header, self.values = Path(path), header, {}

    def record(self, key: str, value: object) -> None:
        self.values[key] = value
        print(json.dumps({key: value}))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({**self.header(), **self.values}, indent=1))
