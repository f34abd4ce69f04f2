"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, ValidationError

from api.security import KeyCache, key_id
from decisioning.engine import DecisionEngine
from decisioning.errors import Forbidden, Unauthorized

bearer = HTTPBearer(auto_error=False)
M = TypeVar("M", bound=BaseModel)


async def get_engine(request: Request) -> DecisionEngine:
    engine: DecisionEngine = request.app.state.engine
    return engine


EngineDep = Annotated[DecisionEngine, Depends(get_engine)]


def allowed_roles(*roles: str) -> frozenset[str]:
    """``roles`` and admin, who may do anything."""
    return frozenset({*roles, "admin"})


def authorize(request: Request, key: str | None, allowed: frozenset[str]) -> str:
    """The role of ``key`` if it is one of ``allowed``; 401 or 403 otherwise."""
    if key is None:
        raise Unauthorized("send 'Authorization: Bearer <key>'", field="Authorization")
    keys: KeyCache = request.app.state.keys
    role = keys.role(key)
    if role is None:
        raise Unauthorized("unknown or revoked API key", field="Authorization")
    if role not in allowed:
        raise Forbidden(f"role {role!r} may not do this; needs one of {sorted(allowed)}")
    return role


def bearer_key(request: Request) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, read as ``HTTPBearer`` reads it."""
    scheme, key = get_authorization_scheme_param(request.headers.get("authorization"))
    return key if key and scheme.lower() == "bearer" else None


def require(*roles: str) -> Callable[..., Awaitable[str]]:
    """A dependency admitting keys whose role is one of ``roles`` (admin always is)."""
    allowed = allowed_roles(*roles)

    # async: dependencies that do not block run on the event loop, not in the thread pool.
    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        return authorize(request, credentials.credentials if credentials else None, allowed)

    return check


Channel = Annotated[str, Depends(require("channel"))]
Marketer = Annotated[str, Depends(require("marketer"))]
Reader = Annotated[str, Depends(require("marketer", "analyst"))]
ProfileWriter = Annotated[str, Depends(require("channel", "marketer"))]
Admin = Annotated[str, Depends(require())]


async def key_identity(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """``key:<id>``, the public part of the caller's key, for audit trails (after ``require``)."""
    if credentials is None:
        raise Unauthorized("send 'Authorization: Bearer <key>'", field="Authorization")
    return f"key:{key_id(credentials.credentials)}"


KeyIdentity = Annotated[str, Depends(key_identity)]


async def json_body(request: Request, model: type[M]) -> M:
    """The request's body as ``model``, parsed and validated in one pass (pydantic's JSON
    parser), failing as a FastAPI body parameter fails: a ``RequestValidationError`` whose
    locations start at ``body``."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        if _is_json(request.headers.get("content-type")):
            return model.model_validate_json(raw)
        return model.model_validate(raw)  # what FastAPI does with a body of another type
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def _is_json(content_type: str | None) -> bool:
    """No content type, ``application/json`` or ``application/<anything>+json``."""
    if not content_type:
        return True
    maintype, _, subtype = content_type.partition(";")[0].strip().lower().partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))
