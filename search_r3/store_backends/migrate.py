"""Copy a collection from one store to another (local mode -> embedded engine -> server), resumably.

Points are copied by id with their vectors (dense and sparse) and payload, in batches. A point
already in the target with the same payload is skipped, so a run that was interrupted continues
where it stopped and a second run copies nothing. At the end the counts and a sample of points
(vectors and payload) are compared; a difference is a `MigrationError`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from search_r3.store_backends.errors import StoreError

logger = logging.getLogger(__name__)

#: Points compared, vectors and payload, at the end of a migration.
SAMPLE_SIZE = 200


class MigrationError(StoreError):
    """The target does not hold what the source does after a migration."""


@dataclass
class MigrationReport:
    """What a migration did: points copied, points already there, and the final counts."""

    collection: str
    copied: int = 0
    skipped: int = 0
    source_count: int = 0
    target_count: int = 0
    sampled: int = 0
    created: bool = False
    indexed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def migrate_collection(
    source: Any,
    target: Any,
    collection: str,
    *,
    batch_size: int = 512,
    sample_size: int = SAMPLE_SIZE,
    progress: Callable[[int, int], None] | None = None,
    optimize: bool = True,
) -> MigrationReport:
    """Copy ``collection`` from the ``source`` client to the ``target`` client (see the module doc).

    Example:
        ```python
        from search_r3.store import open_client

        old, new = open_client("./old-store", backend="local"), open_client("./new-store")
        print(migrate_collection(old, new, "search_r3"))
        ```

    Args:
        source, target: Store clients (`search_r3.store.open_client`).
        batch_size: Points read and written per request.
        sample_size: Points compared at the end.
        progress: Called with (points done, points in all) after each batch.
        optimize: Build the target's search index at the end (embedded engine).

    Raises:
        MissingCollectionError: No such collection in the source.
        MigrationError: The target's collection has another layout, or differs at the end.
    """
    from search_r3.store import require_collection
    from search_r3.store_backends import optimize_collection

    if batch_size < 1:
        raise StoreError(f"batch size must be positive, got {batch_size}.")
    require_collection(source, collection)
    report = MigrationReport(collection=collection)
    config = source.get_collection(collection).config
    if not target.collection_exists(collection):
        target.create_collection(
            collection,
            vectors_config=config.params.vectors,
            sparse_vectors_config=getattr(config.params, "sparse_vectors", None) or None,
            metadata=getattr(config, "metadata", None) or None,
        )
        report.created = True
    else:
        _check_layout(collection, config, target.get_collection(collection).config)
    total = int(source.count(collection, exact=True).count)
    offset = None
    done = 0
    while True:
        points, offset = source.scroll(
            collection, limit=batch_size, offset=offset, with_payload=True, with_vectors=True
        )
        if points:
            copied = _copy_batch(target, collection, points)
            report.copied += copied
            report.skipped += len(points) - copied
            done += len(points)
            if progress is not None:
                progress(done, total)
        if offset is None:
            break
    report.source_count = total
    report.target_count = int(target.count(collection, exact=True).count)
    if report.target_count != report.source_count:
        raise MigrationError(
            f"Collection {collection!r}: the source holds {report.source_count} points, the target "
            f"{report.target_count}. The target had points of its own or the source changed during the "
            "copy: migrate into a new collection or folder."
        )
    report.sampled = verify_sample(source, target, collection, sample_size)
    if optimize:
        report.indexed = optimize_collection(target, collection, show_progress=progress is not None)
    return report


def _copy_batch(target: Any, collection: str, points: list[Any]) -> int:
    """Upsert the points the target lacks or holds with another payload; returns how many."""
    from qdrant_client import models

    there = {
        str(p.id): p.payload
        for p in target.retrieve(
            collection, ids=[p.id for p in points], with_payload=True, with_vectors=False
        )
    }
    todo = [p for p in points if str(p.id) not in there or there[str(p.id)] != p.payload]
    if todo:
        target.upsert(
            collection,
            points=[models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in todo],
            wait=True,
        )
    return len(todo)


def verify_sample(source: Any, target: Any, collection: str, sample_size: int = SAMPLE_SIZE) -> int:
    """Compare up to ``sample_size`` points (spread over the collection) in both stores.

    Returns:
        How many points were compared.

    Raises:
        MigrationError: A point is missing or differs (payload, vector names, values).
    """
    ids: list[Any] = []
    offset = None
    while True:  # ids only: cheap even for a large collection
        page, offset = source.scroll(collection, limit=2048, offset=offset, with_payload=False)
        ids += [p.id for p in page]
        if offset is None:
            break
    chosen = random.Random(0).sample(ids, min(sample_size, len(ids)))
    if not chosen:
        return 0
    want = {
        str(p.id): p for p in source.retrieve(collection, ids=chosen, with_payload=True, with_vectors=True)
    }
    got = {
        str(p.id): p for p in target.retrieve(collection, ids=chosen, with_payload=True, with_vectors=True)
    }
    for point_id, point in want.items():
        other = got.get(point_id)
        if other is None:
            raise MigrationError(f"Point {point_id} of {collection!r} is missing from the target.")
        if other.payload != point.payload:
            raise MigrationError(f"Point {point_id} of {collection!r} has another payload in the target.")
        if not _same_vectors(point.vector, other.vector):
            raise MigrationError(f"Point {point_id} of {collection!r} has other vectors in the target.")
    return len(want)


def _same_vectors(a: Any, b: Any) -> bool:
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or set(a) != set(b):
            return False
        return all(_same_vectors(a[name], b[name]) for name in a)
    if hasattr(a, "indices") or hasattr(b, "indices"):
        if not (hasattr(a, "indices") and hasattr(b, "indices")):
            return False
        order_a, order_b = np.argsort(a.indices), np.argsort(b.indices)
        return list(np.asarray(a.indices)[order_a]) == list(np.asarray(b.indices)[order_b]) and bool(
            np.allclose(np.asarray(a.values)[order_a], np.asarray(b.values)[order_b], rtol=1e-5, atol=1e-6)
        )
    left, right = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return left.shape == right.shape and bool(np.allclose(left, right, rtol=1e-4, atol=1e-5))


def _check_layout(collection: str, source: Any, target: Any) -> None:
    """The target's existing collection must have the source's vectors (names, sizes, distance)."""

    def dense(config: Any) -> Any:
        vectors = config.params.vectors
        if isinstance(vectors, dict):
            return {name: (v.size, str(v.distance)) for name, v in vectors.items()}
        return (vectors.size, str(vectors.distance))

    def sparse(config: Any) -> set[str]:
        return set(getattr(config.params, "sparse_vectors", None) or {})

    if dense(source) != dense(target) or sparse(source) != sparse(target):
        raise MigrationError(
            f"Collection {collection!r} exists in the target with other vectors ({dense(target)}, "
            f"sparse {sorted(sparse(target))}) than the source ({dense(source)}, sparse "
            f"{sorted(sparse(source))}); migrate into another folder, or delete it there first."
        )
