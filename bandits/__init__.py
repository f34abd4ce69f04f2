"""Decision policies behind one interface (``bandits.base.Policy``) and their registry."""

from bandits import (  # noqa: F401  (registers the policies)
    beta_bernoulli,
    epsilon_greedy,
    linear_ts,
    linucb,
    logistic_ts,
    uniform,
    vw,
)
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
