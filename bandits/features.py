"""Featurisation of (customer context, offer features, offer id) into a fixed-length vector.

Numeric values are scaled, strings are hashed ("name=value") into buckets, and every context
feature is crossed with every action feature (hashed), so one linear model can express
customer x offer effects. Missing features contribute nothing (cold start); unseen strings hash
like any other value, so nothing is ever out of vocabulary.

References
----------
Weinberger et al. (2009), "Feature hashing for large scale multitask learning", eq. 1.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping

import numpy as np

from bandits.base import Context, PolicyError


class Featurizer:
    """Turn ``(context, action_features, action_id)`` into a vector of length ``dim``.

    Parameters
    ----------
    dim
        Length of the output vector (>= 8). Index 0 is a constant 1 (bias).
    scales
        Optional divisor per numeric feature name (e.g. a standard deviation).
    interactions
        Whether to add hashed context x action crosses.
    """

    def __init__(
        self,
        dim: int = 64,
        *,
        scales: Mapping[str, float] | None = None,
        interactions: bool = True,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 8:
            raise PolicyError("dim", f"must be an integer >= 8, got {dim!r}")
        self.dim = dim
        self.scales = dict(scales or {})
        for name, s in self.scales.items():
            if not (isinstance(s, int | float) and math.isfinite(s) and s > 0):
                raise PolicyError("scales", f"{name!r} must be a positive number, got {s!r}")
        self.interactions = interactions
        self._cache: dict[str, int] = {}

    def _index(self, key: str) -> int:
        idx = self._cache.get(key)
        if idx is None:
            idx = 1 + zlib.crc32(key.encode()) % (self.dim - 1)
            if len(self._cache) < 1_000_000:
                self._cache[key] = idx
        return idx

    def _items(self, prefix: str, features: Context) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        for name, value in features.items():
            if value is None:
                continue
            if isinstance(value, str):
                out.append((f"{prefix}{name}={value}", 1.0))
            elif isinstance(value, bool | int | float):
                v = float(value)
                if math.isfinite(v):
                    out.append((f"{prefix}{name}", v / self.scales.get(name, 1.0)))
        return out

    def transform_one(self, context: Context, action: Context, action_id: str) -> np.ndarray:
        """Return the feature vector, shape ``(dim,)``; never raises on missing/new values."""
        x = np.zeros(self.dim)
        x[0] = 1.0
        ctx = self._items("c:", context)
        act = self._items("a:", action)
        act.append((f"id={action_id}", 1.0))
        for key, v in ctx:
            x[self._index(key)] += v
        for key, v in act:
            x[self._index(key)] += v
        if self.interactions:
            for ck, cv in ctx:
                for ak, av in act:
                    x[self._index(f"{ck}*{ak}")] += cv * av
        return x

    def transform_context(self, context: Context) -> np.ndarray:
        """Context-only vector (bias + context features), shape ``(dim,)``, for disjoint models."""
        x = np.zeros(self.dim)
        x[0] = 1.0
        for key, v in self._items("c:", context):
            x[self._index(key)] += v
        return x
