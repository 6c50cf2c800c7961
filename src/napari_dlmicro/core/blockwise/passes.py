"""One pass of a blockwise job: a task per block over the workers, progress as they finish, failures named."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from napari_dlmicro.core.blockwise.failures import kept_failing, stop_if_fatal, why
from napari_dlmicro.core.blockwise.plan import Block, BlockPlan
from napari_dlmicro.core.blockwise.state import RunState
from napari_dlmicro.core.io.ngff_write import OutputSpec
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.cluster import Engine, run_tasks
from napari_dlmicro.core.runtime.events import Event, Job, Level, Notice, ProgressClock


def block_pass(eng: Engine, fn: Callable[..., Any], blocks: Sequence[Block], ctx: Any, plan: BlockPlan,
               state: RunState, spec: OutputSpec, token: CancelToken, label: str, past: str,
               on_done: Callable[[Block, Any], Event | None]) -> Job:
    """Run ``fn(block, ctx)`` for every block; ``on_done(block, result)`` may give an event (a preview) for each.

    Progress says ``label`` (``segmenting blocks``) and ``block i/n past``.

    A full disk or a cancel stops the pass at once; a block that keeps failing
    (after the retries) is named as it fails, the others finish, and then the
    pass raises an error naming them all, with the output left unfinished.
    """
    clock = ProgressClock(len(blocks), label)
    failed: list[tuple[str, BaseException]] = []
    finished = 0
    for outcome in run_tasks(eng.client, fn, list(blocks), ctx, token=token, on_cancel=state.ask_cancel, key=past):
        if outcome is None:
            continue
        finished += 1
        block = outcome.item
        if outcome.error is not None:
            stop_if_fatal(outcome.error, spec.path, state)
            failed.append((block.where(plan.out_axes), outcome.error))
            yield Notice(f"block {block.where(plan.out_axes)} failed: {why(outcome.error)}", Level.WARNING)
        else:
            event = on_done(block, outcome.result)
            if event is not None:
                yield event
        yield clock.tick(finished, f"block {finished}/{len(blocks)} {past}")
    if failed:
        raise kept_failing(failed, len(plan.blocks), "block(s)", spec.path)
