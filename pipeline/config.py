"""Run parameters: every weight and limit of a run, stored whole in ``runs.params``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from store.errors import InputError

KNOWN_EVENTS = ("purchased", "cart", "rating", "wishlist", "search_keyword")
EXCLUDE_RULES = ("all", "purchased", "none")
ENGINES = ("inprocess", "spark")


def default_event_weights() -> dict[str, float]:
    return {"purchased": 5.0, "cart": 3.0, "rating": 2.5, "wishlist": 2.0, "search_keyword": 1.0}


def default_component_weights() -> dict[str, float]:
    return {"total": 0.35, "unique": 0.25, "avg_event": 0.20, "frequency": 0.15, "recency": 0.05}


@dataclass
class RunParams:
    depth: int = 100
    strategy: str = "engagement"
    exclude: str = "all"
    holdout: float = 0.2
    bot_daily_limit: int = 1000
    decay_days: float = 90.0
    unknown_event_weight: float = 1.0
    event_weights: dict[str, float] = field(default_factory=default_event_weights)
    component_weights: dict[str, float] = field(default_factory=default_component_weights)
    keep_runs: int = 5
    max_audiences_per_user: int | None = None
    seed: int = 0
    # Publish gates (pipeline/gates.py): a run that fails one is held instead of published.
    gates: bool = True
    min_share: float = 0.5
    max_dropped: float = 0.2
    recall_alpha: float = 0.05
    retention_days: float = 7.0  # exports, rejected uploads and logs beside the database older than this go
    engine: str = "inprocess"        # or "spark" (pipeline/spark)
    spark_master: str | None = None  # Spark master URL; None: local[*]
    # The window propensity predicts, in days: set by the run to its holdout window's length (None: derived
    # from the holdout share of the events the model is fitted on).
    horizon_days: float | None = None

    def validate(self) -> RunParams:
        from store.schema import MAX_DEPTH
        if not 1 <= self.depth <= MAX_DEPTH:
            raise InputError(f"--depth must be between 1 and {MAX_DEPTH}, got {self.depth}")
        if self.exclude not in EXCLUDE_RULES:
            raise InputError(f"--exclude must be one of {', '.join(EXCLUDE_RULES)}, got {self.exclude!r}")
        if not 0 <= self.holdout < 1:
            raise InputError(f"--holdout must be in [0, 1), got {self.holdout}")
        if self.bot_daily_limit < 1:
            raise InputError(f"--bot-limit must be at least 1, got {self.bot_daily_limit}")
        if self.decay_days <= 0:
            raise InputError(f"--decay-days must be positive, got {self.decay_days}")
        if self.keep_runs < 1:
            raise InputError(f"--keep-runs must be at least 1, got {self.keep_runs}")
        if set(self.component_weights) != set(default_component_weights()):
            raise InputError("component weights must name exactly: " + ", ".join(default_component_weights()))
        if self.max_audiences_per_user is not None and self.max_audiences_per_user < 1:
            raise InputError(f"--max-audiences-per-user must be at least 1, got {self.max_audiences_per_user}")
        if self.engine not in ENGINES:
            raise InputError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.spark_master is not None and self.engine != "spark":
            raise InputError("--spark-master needs --engine spark")
        self._validate_weights()
        self._validate_gates()
        return self

    def _validate_weights(self) -> None:
        """A negative weight would rank the users who did the most as the least engaged."""
        for flag, weights in (("--event-weights", {**self.event_weights, "unknown": self.unknown_event_weight}),
                              ("--component-weights", self.component_weights)):
            bad = {k: v for k, v in weights.items() if not v >= 0}  # NaN fails too
            if bad:
                shown = ", ".join(f"{k}={v:g}" for k, v in bad.items())
                raise InputError(f"{flag} must not be negative, got {shown}; use 0 to ignore one")

    def _validate_gates(self) -> None:
        for flag, value in (("--min-share", self.min_share), ("--max-dropped", self.max_dropped)):
            if not 0 <= value <= 1:
                raise InputError(f"{flag} is a share between 0 and 1, got {value:g}")
        if not self.retention_days >= 0:
            raise InputError(f"--retention-days must be 0 or more, got {self.retention_days:g}")
        if not 0 < self.recall_alpha < 1:
            raise InputError(f"--recall-alpha is a significance level between 0 and 1, got {self.recall_alpha:g}")

    def to_dict(self) -> dict:
        return asdict(self)
