"""Decision policies behind one interface (``bandits.base.Policy``) and their registry."""

from bandits import beta_bernoulli  # noqa: F401  (registers the policy)
from bandits.base import (
    Actions,
    Context,
    Draw,
    Policy,
    PolicyError,
    available_policies,
    draw_slate,
    make_policy,
)

__all__ = [
    "Actions",
    "Context",
    "Draw",
    "Policy",
    "PolicyError",
    "available_policies",
    "draw_slate",
    "make_policy",
]
