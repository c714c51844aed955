"""Reading JSON-lines files whose every line must be an object; errors name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def iter_json_objects(path: Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each non-blank line; raise ``error`` naming ``path:line``."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{number}: not valid JSON ({exc.msg}).") from exc
            if not isinstance(row, dict):
                raise error(f"{path}:{number}: expected one JSON object per line.")
            yield number, row
