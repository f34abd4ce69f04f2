"""API keys (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import Admin, EngineDep
from api.schemas import KeyIn, KeyOut
from api.security import create_key

router = APIRouter(tags=["keys"])


@router.post("/keys", response_model=KeyOut, status_code=status.HTTP_201_CREATED)
def new_key(body: KeyIn, engine: EngineDep, _role: Admin) -> KeyOut:
    """A new key for ``role``; the secret is shown only in this answer."""
    return KeyOut(key=create_key(engine.db, body.role, body.name), role=body.role)
