"""The FastAPI application: OpenAI-compatible ``/v1/embeddings``, ``/v1/search``, models, health,
metrics, API-key checks and a drain state for graceful shutdown.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from search_r3 import __version__
from search_r3.server.config import ServerConfig
from search_r3.server.errors import APIError, install_error_handlers
from search_r3.server.schemas import EmbeddingRequest, SearchRequest
from search_r3.server.service import EmbeddingService, Encoded

_ENDPOINTS = ("/v1/embeddings", "/v1/search", "/v1/models", "/health", "/metrics")


@dataclass
class Lifecycle:
    """Requests being answered, and whether the server is draining (new requests get 503)."""

    in_flight: int = 0
    draining: bool = False


class _Guard:
    """ASGI middleware: 503 while draining, 413 for oversized bodies, in-flight and status counts."""

    def __init__(self, app: Any, *, lifecycle: Lifecycle, service: EmbeddingService, config: ServerConfig):
        self.app = app
        self.lifecycle = lifecycle
        self.metrics = service.metrics
        self.config = config

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = next((e for e in _ENDPOINTS if path.endswith(e.removeprefix("/v1"))), "other")
        if self.lifecycle.draining:
            self.metrics.requests.labels(endpoint, "503").inc()
            error = APIError(
                503, "The server is shutting down; retry later or elsewhere.", code="shutting_down"
            )
            await error.response()(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.config.max_body_bytes:
            self.metrics.requests.labels(endpoint, "413").inc()
            error = APIError(
                413,
                f"The body has {int(length)} bytes; this server reads at most {self.config.max_body_bytes}. "
                "Split the inputs over several requests.",
                code="request_too_large",
            )
            await error.response()(scope, receive, send)
            return
        status = {"code": 500}

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        self.lifecycle.in_flight += 1
        self.metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.lifecycle.in_flight -= 1
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            self.metrics.request_seconds.labels(endpoint).observe(time.perf_counter() - started)


def check_input(value: Any, config: ServerConfig) -> list[str]:
    """The texts of an ``input`` field, or an `APIError` naming the item at fault."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise APIError(
            422,
            f"input must be a string or a list of strings, not {_kind(value)}.",
            param="input",
            code="invalid_type",
        )
    if not items:
        raise APIError(
            400, "input is an empty list; send at least one text.", param="input", code="empty_input"
        )
    if all(_is_token_ids(x) for x in items) or all(
        isinstance(x, list) and x and all(map(_is_token_ids, x)) for x in items
    ):
        raise APIError(
            400,
            "input holds token ids; this server embeds text only (its prompts wrap the text in the model's "
            "template). Send the strings instead.",
            param="input",
            code="token_ids_not_supported",
        )
    if len(items) > config.max_inputs:
        raise APIError(
            413,
            f"input has {len(items)} texts; this server takes at most {config.max_inputs} per request. "
            "Split them over several requests.",
            param="input",
            code="too_many_inputs",
        )
    total = 0
    for i, item in enumerate(items):
        param = f"input[{i}]" if isinstance(value, list) else "input"
        if not isinstance(item, str):
            raise APIError(422, f"{param} is {_kind(item)}, not a string.", param=param, code="invalid_type")
        if not item.strip():
            raise APIError(400, f"{param} is empty; remove empty texts.", param=param, code="empty_input")
        if len(item) > config.max_input_chars:
            raise APIError(
                413,
                f"{param} has {len(item)} characters; this server takes at most {config.max_input_chars} "
                "per text. Split long documents into passages.",
                param=param,
                code="input_too_long",
            )
        total += len(item)
    if total > config.max_total_chars:
        raise APIError(
            413,
            f"input has {total} characters in all; this server takes at most {config.max_total_chars} "
            "per request. Split them over several requests.",
            param="input",
            code="request_too_large",
        )
    return items


def _is_token_ids(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return np.asarray(vector, dtype=np.float32).tolist()


def create_app(service: EmbeddingService, config: ServerConfig) -> FastAPI:
    """The ASGI app over a ready `EmbeddingService` (closed when the app shuts down).

    Example:
        ```python
        import uvicorn
        from search_r3.server import ServerConfig, build_service, create_app

        config = ServerConfig(model_name="search-r3-smollm2-135m")
        service = build_service("search-r3-smollm2-135m", config)
        uvicorn.run(create_app(service, config), host="127.0.0.1", port=8080)
        ```
    """
    lifecycle = Lifecycle()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="search-r3",
        version=__version__,
        summary="OpenAI-compatible reasoning embeddings and search",
        lifespan=lifespan,
    )
    app.state.lifecycle = lifecycle
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(_Guard, lifecycle=lifecycle, service=service, config=config)

    def require_key(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(), config.api_key):
            raise APIError(
                401,
                "Missing or wrong API key: send 'Authorization: Bearer KEY' with the key the server was "
                "started with (--api-key / $SEARCH_R3_API_KEY).",
                code="invalid_api_key",
            )

    def check_model(model: str | None) -> None:
        if model is not None and model != config.model_name:
            raise APIError(
                404,
                f"The model {model!r} is not served here; this server serves {config.model_name!r} "
                "(pass it as model).",
                param="model",
                code="model_not_found",
            )

    def check_budget(budget: int | None) -> None:
        if budget is not None and budget > config.max_reasoning_tokens:
            raise APIError(
                400,
                f"max_reasoning_tokens={budget} exceeds the server's limit ({config.max_reasoning_tokens}).",
                param="max_reasoning_tokens",
                code="invalid_value",
            )

    def models_body() -> dict[str, Any]:
        emb = service.embeddings
        return {
            "object": "list",
            "data": [
                {
                    "id": config.model_name,
                    "object": "model",
                    "created": int(app.state.started),
                    "owned_by": "search-r3",
                    "dimension": service.dimension,
                    "max_reasoning_tokens": emb.max_reasoning_tokens,
                    "default_input_type": config.default_input_type,
                }
            ],
        }

    app.state.started = time.time()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": config.model_name, "pending_queries": service.pending_queries}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", dependencies=[Depends(require_key)])
    async def models() -> dict[str, Any]:
        return models_body()

    async def embed(body: EmbeddingRequest, path_type: str | None) -> JSONResponse:
        check_model(body.model)
        if body.dimensions is not None and body.dimensions != service.dimension:
            raise APIError(
                400,
                f"dimensions={body.dimensions} is not supported: this model's vectors have "
                f"{service.dimension} values (omit dimensions).",
                param="dimensions",
                code="unsupported_dimensions",
            )
        texts = check_input(body.input, config)
        input_type = body.input_type or path_type or config.default_input_type
        if input_type == "document":
            if body.reasoning or body.max_reasoning_tokens is not None:
                raise APIError(
                    400,
                    "Documents are embedded without reasoning; drop reasoning/max_reasoning_tokens or "
                    "send input_type='query'.",
                    param="reasoning" if body.reasoning else "max_reasoning_tokens",
                    code="invalid_value",
                )
            rows: list[Encoded] = await service.documents(texts)
        else:
            check_budget(body.max_reasoning_tokens)
            rows = await service.queries(texts, body.reasoning, body.max_reasoning_tokens)
        prompt = sum(r.prompt_tokens for r in rows)
        generated = sum(r.generated_tokens for r in rows if not r.cached)
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": _vector(r.vector, body.encoding_format),
                        "reasoning": r.reasoning,
                        "forced": r.forced,
                        "cached": r.cached,
                    }
                    for i, r in enumerate(rows)
                ],
                "model": config.model_name,
                "input_type": input_type,
                "usage": {
                    "prompt_tokens": prompt,
                    "reasoning_tokens": generated,
                    "total_tokens": prompt + generated,
                },
            }
        )

    @app.post("/v1/embeddings", dependencies=[Depends(require_key)])
    async def embeddings(body: EmbeddingRequest) -> JSONResponse:
        return await embed(body, None)

    def fixed_type(kind: str) -> Any:
        async def typed_embeddings(body: EmbeddingRequest) -> JSONResponse:
            return await embed(body, kind)

        return typed_embeddings

    # base URLs .../v1/query and .../v1/document fix the input type for clients that cannot add fields
    for kind in ("query", "document"):
        auth = [Depends(require_key)]
        app.add_api_route(f"/v1/{kind}/embeddings", fixed_type(kind), methods=["POST"], dependencies=auth)
        app.add_api_route(f"/v1/{kind}/models", models, methods=["GET"], dependencies=auth)

    @app.post("/v1/search", dependencies=[Depends(require_key)])
    async def search(body: SearchRequest) -> JSONResponse:
        if service.store is None:
            raise APIError(
                404,
                "Search is not configured: start the server with --path STORE or --url QDRANT_URL.",
                code="search_not_configured",
            )
        check_model(body.model)
        check_budget(body.max_reasoning_tokens)
        query = check_input(body.query, config)[0]
        mode = body.mode or service.default_search_mode()
        if mode != "dense" and not service.store_has_modes:
            raise APIError(
                400,
                f"mode {mode!r} is not supported by this store; use 'dense'.",
                param="mode",
                code="invalid_value",
            )
        encoded, hits = await service.search(
            query,
            body.k,
            filter=body.filter,
            mode=mode,
            reasoning=body.reasoning,
            max_reasoning_tokens=body.max_reasoning_tokens,
        )
        generated = 0 if encoded.cached else encoded.generated_tokens
        return JSONResponse(
            {
                "object": "search_result",
                "model": config.model_name,
                "collection": service.store.collection_name,
                "query": query,
                "mode": mode,
                "reasoning": encoded.reasoning,
                "forced": encoded.forced,
                "cached": encoded.cached,
                "hits": [
                    {"rank": i, "id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
                    for i, h in enumerate(hits, 1)
                ],
                "usage": {
                    "prompt_tokens": encoded.prompt_tokens,
                    "reasoning_tokens": generated,
                    "total_tokens": encoded.prompt_tokens + generated,
                },
            }
        )

    return app
