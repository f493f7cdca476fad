"""`train --loss listwise`: query-group batches and the listwise softmax cross-entropy + BCE."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from bridge.cli import main
from bridge.errors import TrainingError
from bridge.training.judgments import Judgments
from bridge.training.listwise import LossSettings, group_batches, listwise_loss
from bridge.training.pairs import NegativeSettings, Pair, build_groups, build_pairs

torch = pytest.importorskip("torch")


def _group(query: str, targets: list[float], length: int = 10) -> list[Pair]:
    return [
        Pair(query, f"{query} passage {i} " + "x" * length, t, "judged")
        for i, t in enumerate(targets)
    ]


def _bce(logits: list[float], targets: list[float]) -> float:
    return -sum(
        t * math.log(1 / (1 + math.exp(-z))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-z)))
        for z, t in zip(logits, targets, strict=True)
    ) / len(logits)


def _softmax_ce(logits: list[float], targets: list[float]) -> float:
    norm = math.log(sum(math.exp(z) for z in logits))
    total = sum(targets)
    return -sum(t / total * (z - norm) for z, t in zip(logits, targets, strict=True))


def test_listwise_loss_is_softmax_cross_entropy_on_graded_targets_plus_weighted_bce() -> None:
    groups = [[1.0, 0.5, 0.0], [0.0, 0.0], [0.5, 0.0, 0.0, 0.0]]
    logits = [2.0, 1.0, -1.0, 0.3, -0.2, 0.1, 0.4, -2.0, 1.5]
    flat = [t for g in groups for t in g]
    # the middle group has no positive target: no listwise term, but its pairs are in the BCE
    expected_listwise = (
        _softmax_ce(logits[0:3], groups[0]) + _softmax_ce(logits[5:9], groups[2])
    ) / 2
    for weight in (0.0, 1.0, 0.25):
        loss = listwise_loss(torch.tensor(logits, dtype=torch.float64), groups, weight)
        assert float(loss) == pytest.approx(expected_listwise + weight * _bce(logits, flat))


def test_listwise_loss_ranks_the_better_grade_first() -> None:
    groups = [[1.0, 0.5, 0.0, 0.0]]
    right = listwise_loss(torch.tensor([3.0, 1.0, -1.0, -1.0]), groups, 0.0)
    wrong = listwise_loss(torch.tensor([-1.0, 1.0, 3.0, -1.0]), groups, 0.0)
    assert float(right) < float(wrong)
    # blind to a shift of the whole group without the BCE term; not with it
    shifted = listwise_loss(torch.tensor([13.0, 11.0, 9.0, 9.0]), groups, 0.0)
    assert float(shifted) == pytest.approx(float(right), abs=1e-5)
    assert float(listwise_loss(torch.tensor([13.0, 11.0, 9.0, 9.0]), groups, 1.0)) > float(
        listwise_loss(torch.tensor([3.0, 1.0, -1.0, -1.0]), groups, 1.0)
    )


def test_listwise_loss_takes_a_batch_of_one_pair_squeezed_to_a_scalar() -> None:
    loss = listwise_loss(torch.tensor(2.0, dtype=torch.float64), [[1.0]], 1.0)
    assert float(loss) == pytest.approx(_bce([2.0], [1.0]))  # softmax of one item: CE 0


def test_listwise_loss_gradient_flows_only_through_its_groups() -> None:
    logits = torch.tensor([1.0, 0.0, 0.5, 0.5], requires_grad=True)
    listwise_loss(logits, [[1.0, 0.0], [0.0, 0.0]], 0.0).backward()
    assert logits.grad is not None
    grad = logits.grad.tolist()
    assert grad[0] < 0 < grad[1]
    assert grad[2:] == [0.0, 0.0]


@pytest.mark.parametrize(
    ("logits", "groups", "message"),
    [
        ([0.0, 1.0], [[1.0, 0.0, 0.0]], "2 scores for groups of 3 pairs"),
        ([0.0, 1.0], [[1.0], []], "non-empty query groups"),
        ([0.0], [], "non-empty query groups"),
        ([0.0, 1.0], [[1.5, 0.0]], "targets must be in [0, 1]"),
        ([0.0, 1.0], [[-0.5, 0.0]], "targets must be in [0, 1]"),
    ],
)
def test_listwise_loss_rejects_bad_batches(
    logits: list[float], groups: list[list[float]], message: str
) -> None:
    with pytest.raises(TrainingError, match=message.replace("[", r"\[").replace("]", r"\]")):
        listwise_loss(torch.tensor(logits), groups, 1.0)


def test_group_batches_keep_each_query_whole_and_every_pair_once() -> None:
    groups = [_group(f"q{i}", [1.0, 0.5, 0.0, 0.0][: 1 + i % 4], length=i % 7) for i in range(40)]
    groups.append(_group("big", [1.0] + [0.0] * 11))  # larger than a batch: a batch of its own
    batches = group_batches(groups, 8, seed=3)
    seen: Counter[tuple[str, str]] = Counter()
    for pairs, targets in batches:
        assert sum(len(t) for t in targets) == len(pairs)
        assert len(pairs) <= 8 or len(targets) == 1
        start = 0
        for target in targets:
            queries = {q for q, _ in pairs[start : start + len(target)]}
            assert len(queries) == 1  # one query per group, groups not split
            start += len(target)
        seen.update(pairs)
    expected = Counter((p.query, p.passage) for g in groups for p in g)
    assert seen == expected
    assert group_batches(groups, 8, seed=3) == batches  # seeded
    assert group_batches(groups, 8, seed=4) != batches


@pytest.mark.parametrize(
    ("groups", "size", "message"),
    [
        ([_group("a", [1.0])], 0, "--batch-size must be >= 1"),
        ([], 8, "no query groups"),
        ([[]], 8, "a query group has no pairs"),
        ([_group("a", [1.0]) + _group("b", [0.0])], 8, "mixes queries 'a' and 'b'"),
        ([_group("a", [1.0, 1.2])], 8, "target 1.2 of a pair is outside"),
        ([_group("a", [float("nan")])], 8, "target nan of a pair is outside"),
    ],
)
def test_group_batches_reject_bad_groups(groups: list[list[Pair]], size: int, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        group_batches(groups, size, seed=1)


@pytest.mark.parametrize(
    ("kind", "weight", "message"),
    [
        ("pairwise", 1.0, "--loss must be one of pointwise, listwise, got 'pairwise'"),
        ("listwise", -0.5, "--pointwise-weight must be a finite number >= 0"),
        ("listwise", float("inf"), "--pointwise-weight must be a finite number >= 0"),
        ("listwise", float("nan"), "--pointwise-weight must be a finite number >= 0"),
    ],
)
def test_loss_settings_reject_bad_values(kind: str, weight: float, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        LossSettings(kind=kind, pointwise_weight=weight)


def test_groups_hold_the_same_pairs_as_pointwise_training_one_query_each() -> None:
    judgments = Judgments(
        name="t",
        queries={f"q{i}": f"query {i}" for i in range(12)},
        passages={f"p{i}": f"passage {i}" for i in range(30)},
        gains={f"q{i}": {f"p{i}": 24, f"p{i + 12}": 12, f"p{i + 1}": 0} for i in range(12)},
        scale=24,
        text_fields=("title",),
        source="test",
    )
    negatives = NegativeSettings(per_query=0, random_per_query=2)
    qids = sorted(judgments.queries)
    groups = build_groups(judgments, qids, hits=None, negatives=negatives, seed=5, max_pairs=30)
    pairs = build_pairs(judgments, qids, hits=None, negatives=negatives, seed=5, max_pairs=30)
    assert Counter(p for g in groups for p in g) == Counter(pairs)
    assert all(len({p.query for p in g}) == 1 for g in groups)
    assert sum(len(g) for g in groups) <= 30
    targets = sorted(p.target for p in groups[0] if p.kind == "judged")
    assert targets == [0.0, 0.5, 1.0]


def test_cli_bad_loss_is_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "none"),
            "--base",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
            "--loss",
            "pairwise",
        ]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "--loss must be one of pointwise, listwise" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
