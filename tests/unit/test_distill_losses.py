"""`distill`'s losses and batches: what each loss is blind to, whole lists per batch."""

from __future__ import annotations

import pytest

from bridge.errors import TrainingError

torch = pytest.importorskip("torch", reason="the `train` extra is not installed")

TEACHER = [[2.0, 0.5, -1.0], [0.3, -0.7]]


def _logits(lists: list[list[float]], shift: float = 0.0) -> object:
    return torch.tensor([x + shift for teacher in lists for x in teacher])


@pytest.mark.parametrize("name", ["mse", "margin", "kl"])
def test_every_loss_is_zero_when_the_student_equals_the_teacher(name: str) -> None:
    from bridge.training.distill import distill_loss

    assert float(distill_loss(name)(_logits(TEACHER), TEACHER)) == pytest.approx(0.0, abs=1e-6)


def test_margin_mse_ignores_a_constant_shift_and_mse_does_not() -> None:
    from bridge.training.distill import distill_loss

    shifted = _logits(TEACHER, shift=1.5)
    assert float(distill_loss("margin")(shifted, TEACHER)) == pytest.approx(0.0, abs=1e-6)
    assert float(distill_loss("mse")(shifted, TEACHER)) == pytest.approx(1.5**2)
    # KL alone is blind to the shift too: only its MSE term sees it
    assert float(distill_loss("kl", mse_weight=0.0)(shifted, TEACHER)) == pytest.approx(
        0.0, abs=1e-6
    )
    assert float(distill_loss("kl", mse_weight=0.1)(shifted, TEACHER)) == pytest.approx(
        0.1 * 1.5**2
    )


def test_a_swapped_pair_costs_every_loss_something() -> None:
    from bridge.training.distill import distill_loss

    swapped = [[0.5, 2.0, -1.0], [0.3, -0.7]]
    for name in ("mse", "margin", "kl"):
        assert float(distill_loss(name)(_logits(swapped), TEACHER)) > 0.01, name


def test_an_unknown_loss_is_a_one_line_error() -> None:
    from bridge.training.distill import distill_loss

    with pytest.raises(TrainingError, match="--loss must be one of mse, margin, kl, got 'l1'"):
        distill_loss("l1")


def test_batches_hold_whole_lists_and_every_pair_once() -> None:
    from bridge.training.distill import list_batches

    groups = [
        ((f"q{i}", [f"p{i}-{j}" for j in range(4)]), [float(j) for j in range(4)]) for i in range(7)
    ]
    batches = list_batches(groups, batch_size=8, seed=13)
    assert [len(pairs) for pairs, _ in batches].count(8) == 3  # 2 lists of 4 per batch, 1 left
    seen = sorted(pair for pairs, _ in batches for pair in pairs)
    assert seen == sorted((q, p) for (q, ps), _ in groups for p in ps)
    for pairs, lists in batches:
        assert len(pairs) == sum(len(teacher) for teacher in lists)
