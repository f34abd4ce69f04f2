"""The FastAPI application factory and the one place domain errors become HTTP responses."""

from __future__ import annotations

import gc
import inspect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.groups import DecisionGroups
from api.routers import catalog, customers, decisions, events, experiments, keys
from api.schemas import UNION_TAGS
from api.security import KeyCache
from decisioning.engine import DecisionEngine
from decisioning.errors import (
    Conflict,
    DecisioningError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthorized,
)
from decisioning.learning import BackgroundLearner
from decisioning.settings import Settings
from decisioning.sql.session import WalCheckpointer

MAX_BODY_BYTES = 2 * 1024 * 1024  # a full batch of 1,000 events fits with room to spare
STATUS: dict[type[DecisioningError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
}


def error_body(code: str, message: str, field: str | None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


class BodyLimit:
    """Rejects request bodies over ``limit`` bytes with 413: a declared length at once, a
    streamed body with ``BodyTooLarge`` once it has read past the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = await body_too_large(Request(scope), BodyTooLarge(self.limit))
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


class BodyTooLarge(HTTPException):
    """A body read past the limit. An ``HTTPException``, as FastAPI's body parameters pass those
    on (any other error while reading they answer as a malformed body, 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body exceeds {limit} bytes")


async def body_too_large(_request: Request, exc: BodyTooLarge) -> JSONResponse:
    return JSONResponse(error_body("BODY_TOO_LARGE", exc.detail, "body"), status_code=413)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "[key]") and p not in UNION_TAGS]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path or "body"


Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """Serves the service's hot routes ahead of FastAPI: its telemetry check, its middleware
    stack and its request handler.

    The stack (server errors, telemetry, body limits, exception handlers, the router's matching
    and FastAPI's request handler) costs more than a third of a decision's own work: measured
    in-process, requests interleaved, 267 against 202 µs of CPU per decision request. A direct
    route is an endpoint that takes the ``Request`` and returns the ``Response``; it keeps what
    the stack gave it: the body limit, and the app's handlers for the exceptions it raises (as
    ``ExceptionMiddleware`` looks them up, by the exception's class). A middleware added to the
    app does not see it. Its route stays in the app too, which documents it.

    The body is read here, whole and within the limit, before the endpoint runs: Starlette's
    ``Request.body`` (an async generator over ``receive``) and a body-counting ``receive``
    cost a decision request about 48,000 instructions, 3 % of all it costs the server
    (``callgrind``, in-process); the endpoint still checks the key before it parses the body.
    """

    def __init__(
        self,
        routes: Mapping[tuple[str, str], Endpoint],
        handlers: Mapping[Any, Callable[[Request, Exception], Any]],
        body_limit: int,
    ) -> None:
        self._handlers = handlers
        self._body_limit = body_limit
        # Each route's endpoint bound once, so a request is looked up once.
        self._served = {key: partial(self._serve, endpoint) for key, endpoint in routes.items()}

    def route(self, scope: Scope) -> Callable[[Scope, Receive, Send], Awaitable[None]] | None:
        """The direct route serving ``scope``, if one does."""
        if scope["type"] != "http":
            return None
        return self._served.get((scope["method"], _route_path(scope)))

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request = ReadRequest(scope, receive)
        try:
            request.content = await _read_body(scope, receive, self._body_limit)
            response = await endpoint(request)
        except Exception as exc:
            handler = next(
                (self._handlers[c] for c in type(exc).__mro__ if c in self._handlers), None
            )
            if handler is None:
                raise  # as through the stack: the server answers 500 and logs it
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, receive, send)


class ReadRequest(Request):
    """A request whose body ``DirectRoutes`` has read (FastAPI's pattern for a custom body)."""

    content = b""

    async def body(self) -> bytes:
        return self.content


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` past ``limit`` bytes: a declared length at once,
    a streamed body once it has read past it."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise BodyTooLarge(limit)
            break
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise BodyTooLarge(limit)
        if not message.get("more_body", False):
            return part if not parts else b"".join([*parts, part])
        parts.append(part)


def _route_path(scope: Scope) -> str:
    """The path the app routes on: the request's, less the ``root_path`` it is served under."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


class DecisioningAPI(FastAPI):
    """FastAPI, serving ``direct_routes`` ahead of itself (``DirectRoutes``).

    FastAPI's ``__call__`` asks OpenTelemetry, on every request, whether a provider has been
    configured (about 4.5 µs: three lookups of the environment), and then Starlette's passes the
    request to the middleware stack: 47,000 instructions of a decision request (``callgrind``,
    in-process). A direct route is served before that, unless FastAPI's telemetry was on when
    last asked, at most ``TELEMETRY_CHECK_SECONDS`` ago: then FastAPI serves it, traced, as
    before.
    """

    TELEMETRY_CHECK_SECONDS = 1.0

    def __init__(self, direct_routes: Mapping[tuple[str, str], Endpoint], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.direct_routes = DirectRoutes(direct_routes, self.exception_handlers, MAX_BODY_BYTES)
        self._telemetry_checked: tuple[float, bool] = (-math.inf, False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.root_path:  # as FastAPI does, before a route is looked up
            scope["root_path"] = self.root_path
        served = self.direct_routes.route(scope)
        if served is None or self._telemetry_on():
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # as Starlette does: ``request.app``
        await served(scope, receive, send)

    def _telemetry_on(self) -> bool:
        checked_at, on = self._telemetry_checked
        now = time.monotonic()
        if now - checked_at >= self.TELEMETRY_CHECK_SECONDS:
            telemetry = getattr(self, "_native_telemetry", None)  # FastAPI 0.16x and later
            on = telemetry is not None and telemetry.enabled()
            self._telemetry_checked = (now, on)
        return on

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()

        async def direct_first(scope: Scope, receive: Receive, send: Send) -> None:
            # Reached with FastAPI's telemetry on: the direct routes still skip the stack.
            served = self.direct_routes.route(scope)
            await (served or stack)(scope, receive, send)

        return direct_first


def create_app(settings: Settings | None = None, engine: DecisionEngine | None = None) -> FastAPI:
    """The service; ``engine`` defaults to one opened (and migrated) from ``settings``."""
    settings = settings or Settings()
    engine = engine or DecisionEngine.open(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        learner = None
        checkpointer = WalCheckpointer(engine.db) if engine.db.dialect.name == "sqlite" else None
        if checkpointer is not None:
            checkpointer.start()
        if settings.runs_embedded_learner:
            learner = BackgroundLearner(engine, settings.learner_interval_seconds)
            learner.start()
        # What the service has loaded by now (modules, schemas, the engine) lives as long as
        # the process. Left in the collector's oldest generation, it is scanned whole every
        # few seconds under load: about 160,000 objects, a 90 ms pause of the event loop, and
        # at 8 connections a p99 of 40-80 ms instead of under 10. Frozen, a full collection
        # scans only what was made since.
        gc.collect()
        gc.freeze()
        yield
        if learner is not None:
            learner.stop()
        if checkpointer is not None:
            checkpointer.stop()

    app = DecisioningAPI(
        direct_routes={("POST", "/v1/decisions"): decisions.decide},
        lifespan=lifespan,
        title="decisioning",
        version="0.1.0",
        description="Next-best-offer decisions, outcome events and catalogue for retail banks.",
    )
    app.state.engine = engine
    app.state.keys = KeyCache(engine.db)
    app.state.decision_groups = DecisionGroups(engine)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.exception_handler(BodyTooLarge)(body_too_large)

    @app.exception_handler(DecisioningError)
    async def domain_error(_request: Request, exc: DecisioningError) -> JSONResponse:
        status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.field), status_code=status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0]
        if first.get("type") == "json_invalid":
            where = first.get("ctx", {}).get("error", "")
            return JSONResponse(
                error_body("MALFORMED_JSON", f"the body is not valid JSON: {where}", "body"),
                status_code=400,
            )
        details = [{"field": _location(e["loc"]), "message": e["msg"]} for e in errors]
        return JSONResponse(
            error_body(
                "INVALID_INPUT",
                f"{_location(first['loc'])}: {first['msg']}",
                _location(first["loc"]),
                details=details,
            ),
            status_code=422,
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: answers without touching the database."""
        return {"status": "ok"}

    routers = (decisions, events, catalog, customers, experiments, keys)
    for router in (module.router for module in routers):
        app.include_router(router, prefix="/v1")
    return app
