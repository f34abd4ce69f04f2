"""Domain exceptions. The core raises these; ``api/`` maps each to one HTTP status, once."""

from __future__ import annotations


class DecisioningError(Exception):
    """Base class; ``field`` names the offending input where there is one."""

    code = "ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DecisioningError):
    """The input is well-formed JSON but breaks a rule of the domain (-> 422)."""

    code = "INVALID_INPUT"


class NotFound(DecisioningError):
    """A referenced object does not exist (-> 404 for the path, 422 for a body field)."""

    code = "NOT_FOUND"


class Conflict(DecisioningError):
    """The request clashes with stored state, e.g. a duplicate id (-> 409)."""

    code = "CONFLICT"


class Unauthorized(DecisioningError):
    """Missing or unknown API key (-> 401)."""

    code = "UNAUTHORIZED"


class Forbidden(DecisioningError):
    """The key's role may not do this (-> 403)."""

    code = "FORBIDDEN"
