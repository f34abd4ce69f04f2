"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.security import KeyCache, key_id
from decisioning.engine import DecisionEngine
from decisioning.errors import Forbidden, Unauthorized

bearer = HTTPBearer(auto_error=False)


async def get_engine(request: Request) -> DecisionEngine:
    engine: DecisionEngine = request.app.state.engine
    return engine


EngineDep = Annotated[DecisionEngine, Depends(get_engine)]


def require(*roles: str) -> Callable[..., Awaitable[str]]:
    """A dependency admitting keys whose role is one of ``roles`` (admin always is)."""
    allowed = {*roles, "admin"}

    # async: dependencies that do not block run on the event loop, not in the thread pool.
    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        if credentials is None:
            raise Unauthorized("send 'Authorization: Bearer <key>'", field="Authorization")
        keys: KeyCache = request.app.state.keys
        role = keys.role(credentials.credentials)
        if role is None:
            raise Unauthorized("unknown or revoked API key", field="Authorization")
        if role not in allowed:
            raise Forbidden(f"role {role!r} may not do this; needs one of {sorted(allowed)}")
        return role

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
