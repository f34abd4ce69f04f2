"""Vowpal Wabbit ``--cb_explore_adf`` through vowpal-wabbit-next (SquareCB by default).

Reward is mapped to VW's cost as ``cost = -reward``; the choice probabilities are VW's own PMF,
mixed with the floor. The model's state is VW's serialized model, so snapshots round-trip.

References
----------
Foster & Rakhlin (2020), "Beyond UCB: optimal and efficient contextual bandits with regression
oracles", Algorithm 1 (SquareCB inverse-gap weighting, eq. 2); VW wiki "Contextual Bandit
algorithms" (``--cb_explore_adf``, ``--squarecb``, ``--epsilon``).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import vowpal_wabbit_next as vw

from bandits.base import (
    Actions,
    Context,
    Payoff,
    Policy,
    PolicyError,
    apply_floor,
    check_feedback,
    check_scalar,
    register,
)

_UNSAFE = re.compile(r"[\s|:]")


def _token(text: str) -> str:
    return _UNSAFE.sub("_", text) or "_"


def _features(features: Context) -> str:
    parts = []
    for name, value in features.items():
        if value is None:
            continue
        if isinstance(value, str):
            parts.append(f"{_token(name)}={_token(value)}")
        elif isinstance(value, bool | int | float) and math.isfinite(float(value)):
            parts.append(f"{_token(name)}:{float(value):.6g}")
    return " ".join(parts)


@register
class VWPolicy(Policy):
    """VW contextual bandit with action-dependent features (ADF).

    Parameters
    ----------
    exploration
        ``"squarecb"`` (``--squarecb --gamma_scale``) or ``"epsilon"`` (``--epsilon``).
    gamma_scale
        SquareCB's gamma scale (> 0); gamma_t = gamma_scale * t^(1/2) by VW's default.
    epsilon
        Exploration share for ``exploration="epsilon"``, in [0, 1].
    interactions
        Cross the shared (customer) and action namespaces (``-q ca``).
    learning_rate
        VW's ``-l`` (> 0).
    """

    name = "vw"

    def __init__(
        self,
        *,
        seed: int | None = None,
        floor: float = 0.0,
        exploration: Literal["squarecb", "epsilon"] = "squarecb",
        gamma_scale: float = 10.0,
        epsilon: float = 0.05,
        interactions: bool = True,
        learning_rate: float = 0.5,
        bits: int = 18,
    ) -> None:
        super().__init__(seed=seed, floor=floor)
        if exploration not in ("squarecb", "epsilon"):
            raise PolicyError(
                "exploration", f"must be 'squarecb' or 'epsilon', got {exploration!r}"
            )
        self.exploration = exploration
        self.gamma_scale = check_scalar(gamma_scale, "gamma_scale", low=0.0, low_open=True)
        self.epsilon = check_scalar(epsilon, "epsilon", low=0.0, high=1.0)
        self.learning_rate = check_scalar(learning_rate, "learning_rate", low=0.0, low_open=True)
        self.bits = int(check_scalar(bits, "bits", low=8, high=30))
        self.interactions = interactions
        args = ["--cb_explore_adf", "--quiet", "-b", str(self.bits), "-l", str(learning_rate)]
        if exploration == "squarecb":
            args += ["--squarecb", "--gamma_scale", str(gamma_scale)]
        else:
            args += ["--epsilon", str(epsilon)]
        if interactions:
            args += ["-q", "ca"]
        if seed is not None:
            args += ["--random_seed", str(seed)]
        self.args = args
        self._reset(None)

    def _reset(self, model: bytes | None) -> None:
        self.workspace = vw.Workspace(self.args, model_data=model)
        self.parser = vw.TextFormatParser(self.workspace)

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("workspace", "parser")}
        state["model"] = self.workspace.serialize()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        model = state.pop("model")
        self.__dict__.update(state)
        self._reset(model)

    def _examples(
        self, context: Context, actions: Actions, label: tuple[str, float, float] | None = None
    ) -> list[vw.Example]:
        lines = [f"shared |c {_features(context)}"]
        for action, feats in actions.items():
            prefix = ""
            if label is not None and action == label[0]:
                prefix = f"0:{label[1]:.6g}:{label[2]:.6g} "
            lines.append(f"{prefix}|a id={_token(action)} {_features(feats)}")
        return [self.parser.parse_line(line) for line in lines]

    def _pmf(self, context: Context, actions: Actions) -> dict[str, float]:
        names = list(actions)
        if not names:
            return {}
        scored = self.workspace.predict_one(self._examples(context, actions))
        if not isinstance(scored, list):
            raise TypeError(f"VW returned {type(scored).__name__}, expected action scores")
        out = dict.fromkeys(names, 0.0)
        pairs: list[tuple[int, float]] = scored  # type: ignore[assignment]
        for index, p in pairs:
            out[names[int(index)]] = float(p)
        total = sum(out.values())
        return (
            {a: p / total for a, p in out.items()}
            if total > 0
            else dict.fromkeys(names, 1 / len(names))
        )

    def score_one(self, context: Context, actions: Actions) -> dict[str, float]:
        """VW's PMF (VW exposes no calibrated reward estimate under ``cb_explore_adf``)."""
        return self._pmf(context, actions)

    def predict_proba_one(
        self, context: Context, actions: Actions, payoff: Payoff | None = None
    ) -> dict[str, float]:
        """VW's own exploration over the costs it learnt; ``payoff`` is not applied (VW learns
        the reward the learner gives it: give the placement a value-based reward definition
        for money-aware choices)."""
        return apply_floor(self._pmf(context, actions), self.floor)

    def learn_one(
        self, context: Context, actions: Actions, chosen: str, reward: float, propensity: float
    ) -> None:
        check_feedback(reward, propensity)
        if chosen not in actions:
            raise PolicyError("chosen", f"{chosen!r} is not among the actions")
        self.workspace.learn_one(self._examples(context, actions, (chosen, -reward, propensity)))
