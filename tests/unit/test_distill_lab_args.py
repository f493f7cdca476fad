"""benchmarks/distill_lab.py passes its precision and KL settings to the fit loop and the loss."""

from __future__ import annotations

from types import ModuleType

import pytest

torch = pytest.importorskip("torch", reason="the `train` extra is not installed")

from bridge.training.distill import listwise_kl_loss  # noqa: E402
from tests.support.benchmark_scripts import load_benchmark  # noqa: E402

REQUIRED = ["--teacher", "t", "--scores", "s.jsonl", "--engine", "http://127.0.0.1:9"]


def lab() -> ModuleType:
    return load_benchmark("distill_lab")


def test_precision_reaches_the_fit_settings() -> None:
    module = lab()
    for precision in ("bf16", "fp32", "auto"):
        args = module.build_parser().parse_args([*REQUIRED, "--precision", precision])
        assert module.fit_settings(args).precision == precision
    assert module.build_parser().parse_args(REQUIRED).precision == "auto"
    with pytest.raises(SystemExit):
        module.build_parser().parse_args([*REQUIRED, "--precision", "fp16"])


def test_kl_temperature_and_mse_weight_reach_the_loss() -> None:
    module = lab()
    logits = torch.tensor([0.3, -1.2, 2.0, 0.1, -0.4])
    lists = [[1.0, -2.0, 3.0], [0.5, 0.0]]
    args = module.build_parser().parse_args(
        [*REQUIRED, "--loss", "kl", "--temperature", "2", "--mse-weight", "0"]
    )
    got = float(module.student_loss(args)(logits, lists))
    assert got == pytest.approx(float(listwise_kl_loss(logits, lists, 2.0, 0.0)))
    default = module.build_parser().parse_args([*REQUIRED, "--loss", "kl"])
    assert float(module.student_loss(default)(logits, lists)) == pytest.approx(
        float(listwise_kl_loss(logits, lists, 1.0, 0.1))
    )
    assert got != pytest.approx(float(module.student_loss(default)(logits, lists)))
