"""Which checkpoint a training run keeps."""
import torch

from napari_dlmicro.core.training.keeper import BestKeeper


def _state(value: float) -> dict:
    return {"w": torch.tensor([value])}


def test_without_tolerance_only_a_better_score_replaces_the_kept_weights():
    keeper = BestKeeper()
    assert keeper.offer((0.8, -1.0), _state(1), 10)
    assert not keeper.offer((0.8, -1.0), _state(2), 20)  # a tie keeps the older weights
    assert not keeper.offer((0.7, 0.0), _state(3), 30)
    assert keeper.offer((0.9, -2.0), _state(4), 40)
    assert keeper.step == 40 and float(keeper.state["w"]) == 4


def test_newer_weights_within_the_tolerance_of_the_best_are_kept():
    keeper = BestKeeper(tolerance=0.1)
    keeper.offer((0.85, -1.0), _state(1), 10)
    assert keeper.offer((0.80, -1.5), _state(2), 20)  # within 0.1 of the best seen: newer wins
    assert keeper.step == 20 and float(keeper.state["w"]) == 2
    assert not keeper.offer((0.70, -0.5), _state(3), 30)  # 0.15 below the best seen (not the kept 0.80)
    assert keeper.step == 20
    assert keeper.offer((0.95, -1.0), _state(4), 40)
    assert not keeper.offer((0.84, -1.0), _state(5), 50)  # the bar moved with the new best
    assert keeper.best_seen == (0.95, -1.0) and keeper.step == 40


def test_kept_weights_are_a_copy_and_the_checkpoint_is_written():
    saved = []
    keeper = BestKeeper(lambda: saved.append(1), min_interval_s=0.0, tolerance=0.05)
    state = _state(1)
    keeper.offer((0.5,), state, 1)
    state["w"] += 1  # the network trains on
    assert float(keeper.state["w"]) == 1
    assert saved == [1]


def test_a_continued_model_is_never_replaced_by_weights_scoring_below_its_start():
    keeper = BestKeeper(tolerance=0.1)
    keeper.offer((0.80, -1.0), _state(0), 0, start=True)
    assert not keeper.offer((0.75, -1.0), _state(1), 10)  # within the tolerance, but below the start
    assert keeper.offer((0.90, -1.0), _state(2), 20)
    assert not keeper.offer((0.79, -1.0), _state(3), 30)  # near the best, still below the start
    assert keeper.offer((0.85, -1.0), _state(4), 40)  # near the best and above the start: newer wins
    assert keeper.step == 40


def test_reserved_buffers_are_filled_by_a_copy_and_stay_independent():
    import torch

    from napari_dlmicro.core.training.keeper import BestKeeper

    live = {"w": torch.zeros(3)}
    keeper = BestKeeper()
    keeper.reserve(live)
    buffers = keeper._buffers
    live["w"] += 1
    keeper.offer((1.0,), live, 1)
    assert keeper.state is buffers and torch.equal(keeper.state["w"], torch.ones(3))
    live["w"] += 1  # training goes on: the kept weights do not move
    assert torch.equal(keeper.state["w"], torch.ones(3))
    keeper.offer((2.0,), live, 2)
    assert keeper.state is buffers and torch.equal(keeper.state["w"], torch.full((3,), 2.0))
