"""Translation between qdrant-client's models and qdrant-edge's (filters, queries, points, records).

`search_r3.store_backends.edge.EdgeClient` takes and returns ``qdrant_client.models`` objects;
this module turns them into qdrant-edge objects and back. What qdrant-edge cannot express here
(geo or nested conditions, for instance) is a one-line `StoreError`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from search_r3.store_backends.errors import StoreError

_DISTANCES = ("Cosine", "Dot", "Euclid", "Manhattan")


def edge_filter(flt: Any) -> Any:
    """A qdrant-edge ``Filter`` from a ``qdrant_client.models.Filter`` (``None`` stays ``None``)."""
    import qdrant_edge as qe
    from qdrant_client import models

    if flt is None:
        return None
    if not isinstance(flt, models.Filter):
        raise StoreError(f"filter must be a qdrant_client.models.Filter, not {type(flt).__name__}.")

    def conditions(value: Any) -> list[Any] | None:
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        return [edge_condition(c) for c in items]

    min_should = None
    if flt.min_should is not None:
        min_should = qe.MinShould(
            [edge_condition(c) for c in flt.min_should.conditions], flt.min_should.min_count
        )
    return qe.Filter(
        must=conditions(flt.must),
        should=conditions(flt.should),
        must_not=conditions(flt.must_not),
        min_should=min_should,
    )


def edge_condition(cond: Any) -> Any:
    import qdrant_edge as qe
    from qdrant_client import models

    if isinstance(cond, models.Filter):
        return edge_filter(cond)
    if isinstance(cond, models.FieldCondition):
        return qe.FieldCondition(
            key=cond.key,
            match=edge_match(cond.match),
            range=edge_range(cond.range),
            values_count=(
                qe.ValuesCount(**cond.values_count.model_dump(exclude_none=True))
                if cond.values_count is not None
                else None
            ),
            is_empty=cond.is_empty,
            is_null=cond.is_null,
        )
    if isinstance(cond, models.HasIdCondition):
        return qe.HasIdCondition({edge_point_id(i) for i in cond.has_id})
    if isinstance(cond, models.IsEmptyCondition):
        return qe.IsEmptyCondition(cond.is_empty.key)
    if isinstance(cond, models.IsNullCondition):
        return qe.IsNullCondition(cond.is_null.key)
    if isinstance(cond, models.HasVectorCondition):
        return qe.HasVectorCondition(cond.has_vector)
    raise StoreError(
        f"The embedded engine does not support {type(cond).__name__} filters here; use field, id, "
        "is-empty or is-null conditions, or a Qdrant server (--url)."
    )


def edge_match(match: Any) -> Any:
    import qdrant_edge as qe
    from qdrant_client import models

    if match is None:
        return None
    if isinstance(match, models.MatchValue):
        value = match.value
        if isinstance(value, bool):  # qdrant-edge 0.9 reads a Python bool as the integer 0/1
            import numpy as np

            value = np.bool_(value)
        return qe.MatchValue(value)
    if isinstance(match, models.MatchAny):
        return qe.MatchAny(list(match.any))
    if isinstance(match, models.MatchExcept):
        return qe.MatchExcept(list(match.except_))
    if isinstance(match, models.MatchText):
        return qe.MatchText(match.text)
    if isinstance(match, models.MatchPhrase):
        return qe.MatchPhrase(match.phrase)
    raise StoreError(f"The embedded engine does not support {type(match).__name__} conditions here.")


def edge_range(rng: Any) -> Any:
    import qdrant_edge as qe
    from qdrant_client import models

    if rng is None:
        return None
    bounds = {k: getattr(rng, k) for k in ("gte", "gt", "lte", "lt")}
    if isinstance(rng, models.DatetimeRange):
        return qe.RangeDateTime(**{k: None if v is None else iso_text(v) for k, v in bounds.items()})
    return qe.RangeFloat(**{k: None if v is None else float(v) for k, v in bounds.items()})


def iso_text(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def edge_query(query: Any, using: str | None = None) -> Any:
    """A qdrant-edge scoring query from what ``QdrantClient.query_points`` takes."""
    import qdrant_edge as qe
    from qdrant_client import models

    if query is None:
        return None
    if isinstance(query, models.NearestQuery):
        return edge_query(query.nearest, using)
    if isinstance(query, models.SparseVector):
        return qe.Query.Nearest(qe.SparseVector(list(query.indices), list(query.values)), using=using)
    if isinstance(query, models.FusionQuery):
        if query.fusion == models.Fusion.DBSF:
            return qe.Fusion.Dbsf()
        return qe.Fusion.Rrf(2)  # Qdrant's default RRF constant
    if isinstance(query, models.RrfQuery):
        rrf = query.rrf
        return qe.Fusion.Rrf(
            int(rrf.k if rrf.k is not None else 2), list(rrf.weights) if rrf.weights else None
        )
    if hasattr(query, "tolist"):
        query = query.tolist()
    if isinstance(query, (list, tuple)) and all(isinstance(x, (int, float)) for x in query):
        return qe.Query.Nearest([float(x) for x in query], using=using)
    raise StoreError(f"The embedded engine does not support {type(query).__name__} queries here.")


def edge_prefetch(prefetch: Any) -> Any:
    import qdrant_edge as qe

    nested = prefetch.prefetch
    nested_list = nested if isinstance(nested, list) else ([nested] if nested is not None else [])
    return qe.Prefetch(
        limit=int(prefetch.limit if prefetch.limit is not None else 10),
        query=edge_query(prefetch.query, prefetch.using),
        prefetches=[edge_prefetch(p) for p in nested_list] or None,
        params=edge_params(prefetch.params),
        filter=edge_filter(prefetch.filter),
        score_threshold=prefetch.score_threshold,
    )


def edge_params(params: Any) -> Any:
    """qdrant-edge ``SearchParams`` (``hnsw_ef``, ``exact``, quantization rescoring) from qdrant-client's."""
    import qdrant_edge as qe

    if params is None:
        return None
    quantization = None
    if params.quantization is not None:
        q = params.quantization
        quantization = qe.QuantizationSearchParams(
            ignore=bool(q.ignore), rescore=q.rescore, oversampling=q.oversampling
        )
    return qe.SearchParams(hnsw_ef=params.hnsw_ef, exact=bool(params.exact), quantization=quantization)


def edge_vectors(vector: Any) -> Any:
    import qdrant_edge as qe
    from qdrant_client import models

    def one(value: Any) -> Any:
        if isinstance(value, models.SparseVector):
            return qe.SparseVector(list(value.indices), list(value.values))
        if hasattr(value, "tolist"):
            return value.tolist()
        return [float(x) for x in value]

    if isinstance(vector, dict):
        return {name: one(value) for name, value in vector.items()}
    return one(vector)


def edge_point_id(value: Any) -> Any:
    """An id qdrant-edge takes: an unsigned integer or a UUID (given as text or ``UUID``)."""
    if isinstance(value, bool):
        raise StoreError(f"Point ids must be unsigned integers or UUIDs, got {value!r}.")
    if isinstance(value, int):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise StoreError(f"Point ids must be unsigned integers or UUIDs, got {value!r}.") from None


def client_record(found: Any, kind: Any) -> Any:
    """A qdrant-client ``Record`` / ``ScoredPoint`` from a qdrant-edge one (no validation cost)."""
    from qdrant_client import models

    vector = found.vector
    if isinstance(vector, dict):
        vector = {
            name: (
                models.SparseVector(indices=list(v.indices), values=list(v.values))
                if hasattr(v, "indices")
                else v
            )
            for name, v in vector.items()
        }
        if list(vector) == [""]:
            vector = vector[""]
    point_id = found.id if isinstance(found.id, int) else str(found.id)
    fields: dict[str, Any] = {"id": point_id, "payload": found.payload, "vector": vector}
    if kind is models.ScoredPoint:
        fields.update(version=found.version, score=float(found.score))
    return kind.model_construct(**fields)


def schema_type(kind: Any) -> Any:
    """qdrant-client's ``PayloadSchemaType`` for a qdrant-edge one (by name)."""
    from qdrant_client import models

    name = str(getattr(kind, "name", kind)).rsplit(".", 1)[-1].lower()
    try:
        return models.PayloadSchemaType(name)
    except ValueError:
        return name


def completed() -> Any:
    from qdrant_client import models

    return models.UpdateResult(operation_id=None, status=models.UpdateStatus.COMPLETED)


def dense_layout(config: Any) -> dict[str, dict[str, Any]]:
    from qdrant_client import models

    if config is None:
        return {}
    items: Iterable[tuple[str, Any]] = config.items() if isinstance(config, dict) else [("", config)]
    layout = {}
    for name, params in items:
        if not isinstance(params, models.VectorParams):
            raise StoreError(f"vectors_config must hold qdrant_client.models.VectorParams, not {params!r}.")
        distance = getattr(params.distance, "value", params.distance)
        if distance not in _DISTANCES:
            raise StoreError(f"Unknown distance {distance!r}; use one of {', '.join(_DISTANCES)}.")
        layout[name] = {"size": int(params.size), "distance": distance}
    return layout


def sparse_layout(config: Any) -> dict[str, dict[str, Any]]:
    from qdrant_client import models

    layout = {}
    for name, params in (config or {}).items():
        modifier = getattr(params, "modifier", None)
        layout[name] = {"modifier": "idf" if modifier == models.Modifier.IDF else None}
    return layout
