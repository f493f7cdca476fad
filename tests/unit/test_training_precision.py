"""`train`/`distill --precision`: bf16 autocast on CPUs with native bf16, and `--eval-queries 0`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.errors import TrainingError
from bridge.training import torch_model as tm
from bridge.training.judgments import load_judgments
from bridge.training.split import split_queries
from bridge.training.train import evaluate_heldout

CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f {extra}\n"


@pytest.mark.parametrize(
    ("extra", "native"),
    [("avx512_bf16 avx512_vnni", True), ("amx_bf16 amx_tile", True), ("avx512bw", False)],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path: Path, extra: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO.format(extra=extra), encoding="utf-8")
    assert tm.cpu_has_bf16(cpuinfo) is native
    assert tm.cpu_has_bf16(tmp_path / "missing") is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    monkeypatch.setattr(tm, "cpu_has_bf16", lambda: native)
    assert tm.resolve_precision("auto") == ("bf16" if native else "fp32")
    assert (tm.resolve_precision("bf16"), tm.resolve_precision("fp32")) == ("bf16", "fp32")


def test_an_unknown_precision_is_a_one_line_error() -> None:
    with pytest.raises(TrainingError, match="--precision must be one of auto, bf16, fp32"):
        tm.FitSettings(precision="fp16")


PAIRS = [
    ("cordless drill", "DEWALT 20V cordless drill with battery"),
    ("cordless drill", "white porcelain dinner plates"),
    ("led bulb", "LED light bulb 4-pack daylight"),
    ("led bulb", "garden hose 50 ft"),
]


def _tiny_bert(tokenizer_json: Path) -> Any:
    torch = pytest.importorskip("torch", reason="the `train` extra is not installed")
    transformers = pytest.importorskip("transformers")
    vocab = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]["vocab"]
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    torch.manual_seed(3)
    return transformers.BertForSequenceClassification(config)


def test_bf16_training_follows_the_fp32_loss_curve_and_keeps_fp32_weights(
    nano_cross_encoder_dir: Path,
) -> None:
    tokenizer_json = nano_cross_encoder_dir / "tokenizer.json"
    start = _tiny_bert(tokenizer_json)
    encoder = tm.PairEncoder(tokenizer_json, 32)
    batches = [(PAIRS, [1.0, 0.0, 1.0, 0.0])] * 20
    logs, models = {}, {}
    for precision in ("fp32", "bf16"):
        models[precision] = copy.deepcopy(start)
        settings = tm.FitSettings(
            lr=1e-2,
            batch_size=4,
            train_word_embeddings=True,
            threads=1,
            progress=False,
            precision=precision,
        )
        logs[precision] = tm.fit(
            models[precision], encoder, lambda epoch: batches, tm.bce_loss, settings
        )
    assert (logs["fp32"].precision, logs["bf16"].precision) == ("fp32", "bf16")
    fp32 = [loss for _, loss in logs["fp32"].losses]
    bf16 = [loss for _, loss in logs["bf16"].losses]
    assert len(fp32) == len(bf16) == 20
    assert bf16[-1] < bf16[0] - 0.2  # it learns
    assert fp32[-1] < fp32[0] - 0.2
    assert max(abs(a - b) for a, b in zip(fp32, bf16, strict=True)) < 0.1  # 0.046 here
    trained = models["bf16"]
    assert {p.dtype for p in trained.parameters()} == {start.classifier.weight.dtype}
    assert not trained.classifier.weight.equal(start.classifier.weight)


def test_eval_queries_zero_skips_the_held_out_eval(
    tmp_path: Path, nano_cross_encoder_dir: Path
) -> None:
    """It stopped the run with "no judgments to evaluate against" after training."""
    folder = tmp_path / "hd"
    folder.mkdir()
    rows = [f"query {i}\t{i}\t3" for i in range(40)]
    (folder / "judgments.tsv").write_text(
        "query\tproduct_uid\trelevance\n" + "".join(r + "\n" for r in rows), encoding="utf-8"
    )
    products = [{"product_uid": str(i), "title": f"product {i}"} for i in range(40)]
    (folder / "products.jsonl").write_text(
        "".join(json.dumps(p) + "\n" for p in products), encoding="utf-8"
    )
    judgments = load_judgments(folder)
    split = split_queries(judgments.queries, 0.5, [])
    assert split.held_out  # there is something it could evaluate
    options = SimpleNamespace(eval_queries=0, eval_window=10, fit=tm.FitSettings())
    out = tmp_path / "out"
    out.mkdir()
    heldout = evaluate_heldout(
        judgments,
        split,
        [nano_cross_encoder_dir],
        client=None,
        index=None,
        fields=(),
        options=options,
        out=out,
    )
    assert heldout == {"queries": 0, "ndcg@10": {}, "report": None}
    assert list(out.iterdir()) == []
