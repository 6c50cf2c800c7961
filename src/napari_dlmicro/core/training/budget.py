"""When a training run stops: after a number of epochs, or when a wall-clock budget is spent."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import UserError


@dataclass
class Budget:
    """``steps``, ``epochs`` x ``steps_per_epoch`` steps, or ``minutes`` of wall-clock time (in that order).

    Under a time budget the loop stops early enough to validate and save:
    :meth:`reserve` keeps the measured cost of those at the end (a quarter of
    the budget at most). The clock starts when the budget is made.
    """

    minutes: float | None = None
    epochs: int | None = None
    steps_per_epoch: int = 50
    n_steps: int | None = None
    start: float = field(default_factory=time.perf_counter, repr=False)
    reserve_s: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if self.n_steps is not None:
            if int(self.n_steps) < 1:
                raise UserError(f"{self.n_steps} training steps is not a training budget", "give at least one step")
            self.minutes, self.epochs = None, None
        elif self.epochs is not None:
            if int(self.epochs) < 1:
                raise UserError(f"{self.epochs} epochs is not a training budget", "give at least one epoch")
            self.minutes = None
        elif self.minutes is None:
            raise UserError("a training run needs a budget", "give minutes or epochs")
        elif not float(self.minutes) > 0:
            raise UserError(f"a training time of {self.minutes} minutes is not positive",
                            "give a positive number of minutes")
        if int(self.steps_per_epoch) < 1:
            raise UserError(f"{self.steps_per_epoch} steps per epoch is not positive",
                            "give at least one step per epoch")

    @property
    def timed(self) -> bool:
        """True for a wall-clock budget."""
        return self.minutes is not None

    @property
    def seconds(self) -> float | None:
        """The wall-clock budget in seconds (None for an epoch budget)."""
        return None if self.minutes is None else float(self.minutes) * 60.0

    @property
    def steps(self) -> int | None:
        """The step budget (None for a wall-clock budget)."""
        if self.n_steps is not None:
            return int(self.n_steps)
        return None if self.epochs is None else int(self.epochs) * int(self.steps_per_epoch)

    def elapsed(self) -> float:
        """Seconds since the budget was made."""
        return time.perf_counter() - self.start

    def reserve(self, seconds: float) -> None:
        """Keep ``seconds`` at the end of a time budget for validation, tuning and saving."""
        if self.seconds is not None:
            self.reserve_s = min(max(self.reserve_s, seconds), 0.25 * self.seconds)

    def fraction(self, step: int) -> float:
        """How far training is, 0..1 (by time under a wall-clock budget)."""
        if self.seconds is not None:
            return min(1.0, self.elapsed() / max(self.seconds - self.reserve_s, 1e-6))
        return min(1.0, step / max(self.steps or 1, 1))

    def done(self, step: int) -> bool:
        """True once the budget is spent."""
        return self.fraction(step) >= 1.0

    def total_steps(self, step: int) -> int:
        """The expected number of steps (estimated from the rate so far under a time budget)."""
        if self.seconds is None:
            return int(self.steps or 1)
        rate = step / max(self.elapsed(), 1e-6)
        return max(step + 1, int(rate * max(self.seconds - self.reserve_s, 0.0)))
