"""OpenAI-style error responses: ``{"error": {"message", "type", "param", "code"}}`` with a status.

Every failure the server reports goes through `APIError`, so clients written for the OpenAI API
(which read ``error.message``) show the server's one-line reason and fix.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from search_r3.errors import SearchR3Error

logger = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
}


class APIError(Exception):
    """An error answered to the client as OpenAI's error JSON.

    Args:
        status: HTTP status (400, 401, 404, 413, 422, 429, 503...).
        message: What went wrong and how to fix it, in one line.
        param: The request field at fault (e.g. ``"input[3]"``), if any.
        code: A short machine-readable code (e.g. ``"invalid_api_key"``).
    """

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        kind = _TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"Retry-After": "1"} if self.status in (429, 503) else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str | None:
    parts = [p for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error (ours, validation, unknown routes, crashes) in OpenAI's error JSON."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": ""}
        param = _location(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            return APIError(
                400, f"The body is not valid JSON: {first.get('msg')}.", code="invalid_json"
            ).response()
        message = f"{param or 'body'}: {first.get('msg')}" if param else str(first.get("msg"))
        return APIError(422, message, param=param, code="invalid_value").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"No route {request.method} {request.url.path}; see GET /v1/models and the docs."
            return APIError(404, message, code="not_found").response()
        return APIError(exc.status_code, str(exc.detail), code=None).response()

    @app.exception_handler(SearchR3Error)
    async def _ours(_: Request, exc: SearchR3Error) -> JSONResponse:
        return APIError(400, str(exc), code="invalid_value").response()

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        logger.exception("request failed")
        return APIError(500, f"Internal error ({type(exc).__name__}); see the server log.").response()
