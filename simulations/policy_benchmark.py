"""Reference simulation: every registered contextual policy against a logistic world.

K = 20 offers with features, customers with 10 features (8 numeric, 2 categorical), a logistic
true response with offer-specific effects. Every policy sees the same customers and the same
uniform numbers for its rewards and draws (common random numbers). Regret is the oracle's
expected reward minus the policy's, as a share of the oracle's, overall and over the last
10,000 rounds. Run: ``python -m simulations.policy_benchmark [--rounds N] [--seeds 1 2 3]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bandits import draw_slate, make_policy
from bandits.base import Actions, Context, Policy
from bandits.evaluation import LoggedRound, evaluate_policy

N_OFFERS = 20
N_NUMERIC = 8
SEGMENTS = ["mass", "affluent", "private", "student"]
CHANNELS = ["app", "web", "branch"]


@dataclass(frozen=True)
class World:
    """A seeded world: offer features, customer features and the true logits per offer."""

    actions: Actions
    numeric: np.ndarray  # (n, 8)
    segment: np.ndarray  # (n,) ints
    channel: np.ndarray  # (n,) ints
    logits: np.ndarray  # (n, K) true log-odds of acceptance
    uniforms: np.ndarray  # (n, 2): reward and draw uniforms (common random numbers)

    def context(self, t: int) -> Context:
        ctx: dict[str, float | str] = {f"x{j}": float(v) for j, v in enumerate(self.numeric[t])}
        ctx["segment"] = SEGMENTS[int(self.segment[t])]
        ctx["channel"] = CHANNELS[int(self.channel[t])]
        return ctx


def make_world(seed: int, rounds: int) -> World:
    """Draw a world: per-offer intercepts and customer effects built from the offer features."""
    rng = np.random.default_rng(seed)
    offer_feats = rng.normal(size=(N_OFFERS, 4))
    base = -3.0 + 0.5 * rng.normal(size=N_OFFERS)
    w = rng.normal(scale=0.35, size=(4, N_NUMERIC))
    beta = offer_feats @ w + rng.normal(scale=0.25, size=(N_OFFERS, N_NUMERIC))
    seg_eff = rng.normal(scale=0.5, size=(N_OFFERS, len(SEGMENTS)))
    ch_eff = rng.normal(scale=0.3, size=(N_OFFERS, len(CHANNELS)))
    numeric = rng.normal(size=(rounds, N_NUMERIC))
    segment = rng.integers(0, len(SEGMENTS), size=rounds)
    channel = rng.integers(0, len(CHANNELS), size=rounds)
    logits = base + numeric @ beta.T + seg_eff[:, segment].T + ch_eff[:, channel].T
    actions = {
        f"offer-{k:02d}": {f"f{j}": float(v) for j, v in enumerate(offer_feats[k])}
        for k in range(N_OFFERS)
    }
    return World(actions, numeric, segment, channel, logits, rng.random((rounds, 2)))


def _probability(logit: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-logit)))


def run_policy(policy: Policy, world: World, rng_seed: int) -> np.ndarray:
    """Play ``policy`` on ``world``; returns the expected reward of each chosen offer, ``(n,)``."""
    names = list(world.actions)
    index = {a: k for k, a in enumerate(names)}
    probs = _probability(world.logits)
    rng = np.random.default_rng(rng_seed)
    out = np.empty(len(probs))
    for t in range(len(probs)):
        ctx = world.context(t)
        p = policy.predict_proba_one(ctx, world.actions)

        def dist(candidates: Sequence[str], p: dict[str, float] = p) -> dict[str, float]:
            return {a: p[a] for a in candidates}

        (draw,) = draw_slate(dist, names, 1, rng)
        k = index[draw.action]
        reward = float(world.uniforms[t, 0] < probs[t, k])
        policy.learn_one(ctx, world.actions, draw.action, reward, draw.propensity)
        out[t] = probs[t, k]
    return out


POLICIES: dict[str, dict[str, object]] = {
    "uniform": {},
    "epsilon-greedy": {"epsilon": 0.05, "dim": 64},
    "linucb": {"alpha": 0.5, "temperature": 0.01, "dim": 64, "floor": 0.001},
    "linear-ts": {"v": 0.1, "dim": 64, "floor": 0.001, "n_draws": 64},
    "logistic-ts": {"dim": 64, "floor": 0.001, "n_draws": 64, "prior_bias": -3.0, "scale": 0.5},
    "vw-squarecb": {"exploration": "squarecb"},
    "vw-epsilon": {"exploration": "epsilon", "epsilon": 0.05},
}


def build(label: str, seed: int, **overrides: object) -> Policy:
    """Build a benchmark policy by its table label (``vw-*`` map to the ``vw`` policy)."""
    params = {**POLICIES[label], **overrides}
    return make_policy("vw" if label.startswith("vw") else label, seed=seed, **params)


def tune_gamma(seed: int, rounds: int, grid: tuple[float, ...] = (5, 10, 25, 50, 100)) -> float:
    """SquareCB's ``gamma_scale`` with the least regret on a tuning seed not used in the table."""
    world = make_world(seed, rounds)
    oracle = _probability(world.logits).max(axis=1).sum()
    regrets = {
        g: oracle - run_policy(build("vw-squarecb", seed, gamma_scale=g), world, seed).sum()
        for g in grid
    }
    return min(regrets, key=regrets.__getitem__)


def speed(label: str, n: int = 2000) -> tuple[float, float, float]:
    """Decisions/s for ``score_one`` and ``predict_proba_one`` and learns/s, 20 offers."""
    world = make_world(99, n)
    policy = build(label, 0)
    ctxs = [world.context(t) for t in range(n)]
    names = list(world.actions)
    start = time.perf_counter()
    for t in range(n):
        policy.learn_one(ctxs[t], world.actions, names[t % N_OFFERS], float(t % 7 == 0), 0.05)
    learn = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for t in range(n):
        policy.score_one(ctxs[t], world.actions)
    score = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for t in range(n):
        policy.predict_proba_one(ctxs[t], world.actions)
    proba = n / (time.perf_counter() - start)
    return score, proba, learn


def ope_check(seed: int, rounds: int) -> tuple[float, dict[str, float]]:
    """Uniform-random log of ``rounds``; IPS/SNIPS/DR of a greedy policy vs its true value."""
    world = make_world(seed, rounds)
    probs = _probability(world.logits)
    learner = build("epsilon-greedy", seed, epsilon=0.0)
    train = make_world(seed + 1000, 5000)
    tprobs = _probability(train.logits)
    rng = np.random.default_rng(seed)
    for t in range(5000):
        k = int(rng.integers(N_OFFERS))
        a = list(train.actions)[k]
        learner.learn_one(
            train.context(t), train.actions, a, float(rng.random() < tprobs[t, k]), 1 / N_OFFERS
        )
    names = list(world.actions)
    log = []
    truth = 0.0
    for t in range(rounds):
        ctx = world.context(t)
        k = int(world.uniforms[t, 1] * N_OFFERS)
        log.append(
            LoggedRound(
                ctx,
                world.actions,
                names[k],
                float(world.uniforms[t, 0] < probs[t, k]),
                1 / N_OFFERS,
            )
        )
        target = learner.predict_proba_one(ctx, world.actions)
        truth += sum(target[a] * probs[t, j] for j, a in enumerate(names))
    truth /= rounds
    est = evaluate_policy(learner, log, seed=seed)
    return truth, {name: e.value for name, e in est.items()}


def main(argv: list[str] | None = None) -> None:
    """Print the regret table, the speed table and the OPE check."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tuning-seed", type=int, default=101)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    args = parser.parse_args(argv)
    gamma = tune_gamma(args.tuning_seed, min(args.rounds, 20_000))
    print(f"SquareCB gamma_scale tuned on seed {args.tuning_seed}: {gamma:g}")
    last = min(10_000, args.rounds)
    print(f"\nregret as % of the oracle's expected reward ({args.rounds} rounds; last {last})")
    print(
        f"{'policy':<16}"
        + "".join(f"  seed {s}: all / last" for s in args.seeds)
        + "   mean all / last"
    )
    for label in args.policies:
        row, alls, lasts = f"{label:<16}", [], []
        for s in args.seeds:
            world = make_world(s, args.rounds)
            oracle = _probability(world.logits).max(axis=1)
            extra = {"gamma_scale": gamma} if label == "vw-squarecb" else {}
            got = run_policy(build(label, s, **extra), world, s)
            a = 100 * (1 - got.sum() / oracle.sum())
            b = 100 * (1 - got[-last:].sum() / oracle[-last:].sum())
            alls.append(a)
            lasts.append(b)
            row += f"  {a:7.2f} / {b:6.2f}    "
        print(row + f"  {np.mean(alls):6.2f} / {np.mean(lasts):6.2f}", flush=True)
    print("\nspeed per core, 20 offers (per second)")
    print(f"{'policy':<16}{'score_one':>12}{'predict_proba':>15}{'learn_one':>12}")
    for label in args.policies:
        sc, pr, le = speed(label)
        print(f"{label:<16}{sc:12,.0f}{pr:15,.0f}{le:12,.0f}")
    print("\nOPE of a greedy policy on uniform-random logs (relative error vs simulator truth)")
    for s in args.seeds:
        truth, est = ope_check(s, args.rounds)
        rel = "  ".join(f"{k} {v:.5f} ({100 * (v - truth) / truth:+.1f}%)" for k, v in est.items())
        print(f"seed {s}: true {truth:.5f}  {rel}")


if __name__ == "__main__":
    main()
