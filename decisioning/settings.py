"""Settings in one validated object, read from ``DECISIONING_*`` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ATTRIBUTION_HOURS = 24.0


class Settings(BaseSettings):
    """Every tunable of a running engine; the defaults run embedded on SQLite."""

    model_config = SettingsConfigDict(env_prefix="DECISIONING_", frozen=True)

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; PostgreSQL in production. Unset: SQLite file."
    )
    sqlite_path: Path = Field(default=Path("decisioning.db"), description="Embedded database file.")
    refresh_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description=(
            "How often a worker checks for a newer catalogue and policy snapshot, and how old"
            " its cached budget states may get."
        ),
    )
    default_policy: str = Field(default="beta-bernoulli", description="Registered policy name.")
    epsilon: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of slots drawn uniformly among eligible offers.",
    )
    business_timezone: str = Field(
        default="UTC", description="Time zone of budget days and of customers without one."
    )
    attribution_window_hours: float = Field(
        default=DEFAULT_ATTRIBUTION_HOURS,
        gt=0,
        description="Outcomes after this long are not credited to a decision.",
    )
    max_limit: int = Field(
        default=10, ge=1, le=100, description="Most offers one decision returns."
    )
    segment_attributes: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = Field(
        default=("segment", "group", "lifecycle"),
        description="Context attributes whose values split experiment reports (uplift by "
        "segment): by default the AUM tier, the customer group and the lifecycle stage.",
    )
    seed: int | None = Field(default=None, description="Seeds exploration (tests, simulations).")
    embedded_learner: bool | None = Field(
        default=None,
        description="Run the learner inside the API process; unset: on for SQLite, off otherwise.",
    )
    learner_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often the learner publishes a new snapshot."
    )

    @property
    def runs_embedded_learner(self) -> bool:
        if self.embedded_learner is not None:
            return self.embedded_learner
        return self.url.startswith("sqlite")

    @cached_property
    def url(self) -> str:
        """The SQLAlchemy URL in force."""
        return self.database_url or f"sqlite:///{self.sqlite_path}"
