"""The one training loop: every kind's trainer is a :class:`Trainer` that :func:`fit` drives.

A trainer says what one step, one validation and one save are; the loop owns
everything else, the same for every kind:

- the budget (minutes or epochs) and the learning-rate schedule over it;
- when to validate (every epoch; under a time budget at most every
  ``validate_every_s``), the history (one row per validation) and the
  checkpoint keeper, which writes the best weights so far as they come;
- the two ways to end early, through the :class:`CancelToken`: *stop*
  finishes the step, validates, keeps the best, tunes and saves; *cancel*
  ends at once with the best weights kept (the current ones when nothing was
  validated yet), written only where that is quick: a big network (over
  :data:`QUICK_SAVE_BYTES`) keeps the checkpoint already on disk;
- the events: :class:`Progress` with an ETA, :class:`Metrics` (the step loss
  and learning rate a few times a second, a row per validation), previews.
"""
from __future__ import annotations

import contextlib
import importlib
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from ..errors import Cancelled
from ..runtime.cancel import CancelToken, call_abandoning, cancellable_forward
from ..runtime.events import Job, Metric, Metrics, Notice, Preview, ProgressClock
from ..runtime.llvm import avoid_triton_crash
from .budget import Budget
from .keeper import BestKeeper
from .result import StopReason, TrainResult
from .schedule import warmup_cosine

EVENT_EVERY_S = 0.25  # progress and step-loss events at most this often
QUICK_SAVE_BYTES = 64 * 2**20  # weights a cancel still writes (a few hundred ms at most)


class OutOfTime(Exception):
    """Raised inside a long step when the wall-clock budget is spent (see :meth:`Trainer.check_time`)."""


class Trainer(ABC):
    """One model kind's training, as :func:`fit` drives it.

    Subclasses set :attr:`kind`, :attr:`lr` and :attr:`steps_per_epoch` and
    implement :meth:`step`, :meth:`validate`, :meth:`weights`,
    :meth:`load_weights` and :meth:`save`; the rest has defaults.
    """

    kind: str = "model"
    lr: float = 1e-3  # where the schedule starts
    warmup: float = 0.03  # fraction of the budget spent warming up
    lr_floor: float = 0.05  # where the cosine ends, as a fraction of ``lr``
    steps_per_epoch: int = 50
    validate_every_s: float | None = None  # under a time budget, validate at most this often
    validate_first: bool = False  # score the starting weights (the first point of the curve)
    continued: bool = False  # started from a trained model: its score is a floor
    tolerance: float = 0.0  # the keeper's tolerance (see BestKeeper)
    checkpoint_every_s: float = 5.0  # at most one checkpoint write this often
    cancel_in_backward: bool = True  # False for networks with in-place layers (backward hooks are forbidden there)
    keep_last_at_budget: bool = False  # a run that spends its budget ends with its last (validated) weights
    finish_cost: float = 0.0  # reserve this many validations' time at the end of a time budget
    preview_every_s: float | None = None  # how often :meth:`preview` is called (None: never)
    budget: Budget | None = None  # set by :func:`fit`

    def check_time(self) -> None:
        """Raise :class:`OutOfTime` once a wall-clock budget is spent: for steps long enough to overrun it."""
        if self.budget is not None and self.budget.timed and self.budget.done(0):
            raise OutOfTime()

    def begin(self) -> None:
        """Called once before the first step (threads, memory formats, the optimiser).

        Make the optimiser here, not in ``__init__``: :func:`fit` first keeps triton's LLVM out of a process
        that holds Mesa's (the first optimiser of a process imports ``torch._dynamo``, which loads triton;
        next to napari's software OpenGL that crashes the process).
        """

    def end(self) -> None:
        """Called once at the end, whatever happened (threads back)."""

    def set_lr(self, lr: float) -> None:
        """Set the optimiser's learning rate."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @abstractmethod
    def step(self, fraction: float) -> float:
        """One optimisation step at ``fraction`` (0..1) of the budget; returns its loss."""

    @abstractmethod
    def validate(self, token: CancelToken) -> dict[str, float]:
        """Scores of the current weights (:class:`Metric` names); may check ``token``."""

    def rank(self, row: dict[str, float]) -> tuple:
        """How good a validation row is; higher is better. Default: the lower validation loss."""
        return (-row.get(Metric.VAL_LOSS, row.get(Metric.TRAIN_LOSS, 0.0)),)

    @abstractmethod
    def weights(self) -> dict:
        """The weights to keep (a state dict, detached by the keeper)."""

    @abstractmethod
    def load_weights(self, state: dict) -> None:
        """Put kept weights back into the network."""

    def finish(self, token: CancelToken, history: list[dict[str, float]]) -> Job:
        """Work after the kept weights are loaded (threshold tuning); returns entries for ``best``."""
        return {}
        yield  # a generator

    @abstractmethod
    def save(self, folder: Path, history: list[dict[str, float]], best: dict[str, float], info: dict[str, Any]) -> None:
        """Write the model folder (atomically), with its history and ``info`` (steps, seconds, stopped)."""

    def model(self) -> Any:
        """What the run returns as its model (a predictor ready to use)."""
        return None

    def preview(self) -> Preview | None:
        """A preview of the current weights' output, or None."""
        return None


def _import_optimizer_machinery() -> None:
    avoid_triton_crash()  # before torch._dynamo looks for triton
    importlib.import_module("torch._dynamo")


def fit(trainer: Trainer, budget: Budget, token: CancelToken, save_to: str | Path | None = None) -> Job:
    """Train with ``trainer`` within ``budget``; yields events, returns a :class:`TrainResult`."""
    folder = Path(save_to) if save_to is not None else None
    history: list[dict[str, float]] = []
    state = {"step": 0, "losses": []}

    def save_checkpoint() -> None:
        # the keeper writes as it keeps: the kept weights are the network's own at this moment
        if folder is None or keeper.state is None:
            return
        args = (folder, list(history), dict(_row_at(history, keeper.step)), _info(state["step"], budget, "checkpoint"))
        if _quick_to_save(keeper.state):
            trainer.save(*args)
            return
        try:  # a big network's write takes seconds: a cancel does not wait for it (it ends atomically, behind)
            call_abandoning(trainer.save, *args, token=token)
        except Cancelled:
            state["writing"] = keeper.step
            raise

    keeper = BestKeeper(save_checkpoint, trainer.checkpoint_every_s, trainer.tolerance)
    clock = ProgressClock(budget.total_steps(0), "training")
    stopped = StopReason.BUDGET
    trainer.budget = budget
    # the first optimizer of a process imports torch._dynamo (a second or more): a cancel does not wait for it
    call_abandoning(_import_optimizer_machinery, token=token)
    trainer.begin()  # here: a trainer's begin may hook its network for this thread's cancel checks
    hooks = contextlib.ExitStack()
    net = getattr(trainer, "net", None)
    if hasattr(net, "register_forward_pre_hook"):  # a cancel stops a step inside the network, forward or backward
        hooks.enter_context(cancellable_forward(net, token, backward=trainer.cancel_in_backward))
    try:
        try:
            if not _quick_to_save(trainer.weights()):  # the keeper's copy of a big network, made before it is needed
                call_abandoning(keeper.reserve, trainer.weights(), token=token)
            if trainer.validate_first:
                row = yield from _validation(trainer, token, budget, state)
                history.append(row)
                if trainer.continued:  # a continued model must not be replaced by worse weights
                    keeper.offer(trainer.rank(row), trainer.weights(), 0, start=True)
                yield Metrics(0, row)
            last_val, last_event = 0.0, budget.elapsed()
            last_preview = last_event
            step = 0
            while not budget.done(step):
                token.check()
                if token.stopping:
                    stopped = StopReason.STOPPED
                    break
                lr = warmup_cosine(budget.fraction(step), trainer.lr, trainer.warmup, trainer.lr_floor)
                trainer.set_lr(lr)
                loss = trainer.step(budget.fraction(step))
                step = state["step"] = step + 1
                state["losses"].append(float(loss))
                now = budget.elapsed()
                epoch_end = step % trainer.steps_per_epoch == 0
                due = epoch_end and (not budget.timed or trainer.validate_every_s is None
                                     or now - last_val >= trainer.validate_every_s)
                if now - last_event >= EVENT_EVERY_S or due:
                    last_event = now
                    clock.total = budget.total_steps(step)
                    yield Metrics(step, {Metric.STEP_LOSS: float(loss), Metric.LR: lr})
                    yield clock.tick(step, f"step {step}, loss {loss:.4g}")
                if due:
                    row = yield from _validation(trainer, token, budget, state)
                    last_val = budget.elapsed()
                    history.append(row)
                    # checkpoint before yielding: the dock may load it the moment it sees the row
                    keeper.offer(trainer.rank(row), trainer.weights(), step)
                    yield Metrics(step, row)
                if trainer.preview_every_s is not None and now - last_preview >= trainer.preview_every_s:
                    last_preview = now
                    preview = trainer.preview()
                    if preview is not None:
                        yield preview
            if step and (not history or history[-1][Metric.STEP] != step):
                row = yield from _validation(trainer, token, budget, state)  # the last weights, validated too
                history.append(row)
                keeper.offer(trainer.rank(row), trainer.weights(), step)
                yield Metrics(step, row)
            if trainer.keep_last_at_budget and stopped is StopReason.BUDGET and step and history:
                keeper.keep(trainer.weights(), step, trainer.rank(history[-1]))
        except OutOfTime:  # the budget ran out inside a step: that step is dropped
            if keeper.state is None and state["step"] > 0:
                keeper.keep(trainer.weights(), state["step"])
        except Cancelled:
            stopped = StopReason.CANCELLED
        step = state["step"]
        cancelled = stopped is StopReason.CANCELLED
        # a cancel writes only what is quick to write: Cellpose-SAM's 1.2 GB take seconds, so a cancelled
        # run of a big network keeps the checkpoint already on disk (Stop validates and saves the last weights)
        writes = not cancelled or _quick_to_save(trainer.weights())
        if cancelled and writes and keeper.state is None and step > 0:
            keeper.keep(trainer.weights(), step)  # nothing validated yet: the weights reached
        if keeper.state is not None:
            trainer.load_weights(keeper.state)
        best = dict(_row_at(history, keeper.step))
        # a continued model is saved even untrained (a finished zero budget), but not at a cancel before its
        # first step: nothing changed
        saved = folder is not None and writes and (step > 0 or (trainer.continued and not cancelled))
        kept_step = state.get("writing", keeper.saved_step)
        on_disk = saved or (folder is not None and kept_step is not None)
        if stopped is not StopReason.CANCELLED and step > 0:
            try:
                best.update((yield from trainer.finish(token, history)))
            except Cancelled:
                stopped = StopReason.CANCELLED
            except Exception:
                if saved:  # what was trained is never lost to a failure after it
                    trainer.save(folder, history, best, _info(step, budget, "failed"))
                raise
        if saved:
            trainer.save(folder, history, best, _info(step, budget, stopped.value))
        elif on_disk:
            writing = " (still being written)" if "writing" in state else ""
            yield Notice(f"training cancelled at step {step}: the checkpoint of step {kept_step} in {folder} is "
                         f"kept{writing}; this model takes seconds to write, so Stop is what saves the last weights")
        elif folder is not None:
            yield Notice("stopped before the first training step: no model was saved" if step == 0 else
                         f"training cancelled at step {step}, before its first checkpoint: no model was saved "
                         "(this model takes seconds to write; Stop validates and saves it)")
        if stopped is not StopReason.BUDGET and (saved or folder is None):
            yield Notice(f"training {stopped.value} at step {step}: kept the weights of step {keeper.step}")
        clock.total = max(step, 1)
        yield clock.tick(clock.total, "done")
        return TrainResult(trainer.kind, trainer.model(), folder if on_disk else None, history, best, stopped, step,
                           budget.elapsed())
    finally:
        hooks.close()
        trainer.end()


def _validation(trainer: Trainer, token: CancelToken, budget: Budget, state: dict) -> Job:
    """A validation row: the step, epoch, time and mean training loss, then the trainer's scores."""
    t0 = time.perf_counter()
    losses = state["losses"]
    row: dict[str, float] = {Metric.STEP: float(state["step"]), Metric.EPOCH: state["step"] / trainer.steps_per_epoch,
                             Metric.SECONDS: budget.elapsed(),
                             Metric.TRAIN_LOSS: float(sum(losses) / len(losses)) if losses else float("nan")}
    row.update(trainer.validate(token))
    state["losses"] = []
    if trainer.finish_cost:
        budget.reserve(trainer.finish_cost * (time.perf_counter() - t0) + 2.0)
    return row
    yield  # a generator, so a validation can later report progress


def _quick_to_save(weights: dict) -> bool:
    """Whether writing these weights takes well under a second (at most :data:`QUICK_SAVE_BYTES`)."""
    return sum(v.numel() * v.element_size() for v in weights.values() if hasattr(v, "numel")) <= QUICK_SAVE_BYTES


def _row_at(history: list[dict[str, float]], step: int) -> dict[str, float]:
    return next((r for r in history if r[Metric.STEP] == step), {})


def _info(step: int, budget: Budget, stopped: str) -> dict[str, Any]:
    return {"steps": step, "seconds": budget.elapsed(), "stopped": stopped}
