"""The distill student's layer surgery and the fit loop's per-step hook, on a tiny random BERT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the `train` extra is not installed")
transformers = pytest.importorskip("transformers", reason="the `train` extra is not installed")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "drill", "cordless", "deck", "screw", "paint", "white"]


def _tiny_checkpoint(folder: Path, layers: int = 4) -> Path:
    """A random 4-layer BERT cross-encoder folder (config, safetensors, tokenizer.json)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(WORDS),
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=1,
        initializer_range=0.5,  # scores that differ between pairs and between models
    )
    transformers.BertForSequenceClassification(config).save_pretrained(str(folder))
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


PAIRS = [("cordless drill", "white paint"), ("deck screw", "deck screw white"), ("paint", "drill")]


def test_a_student_of_named_layers_scores_as_a_hand_built_model_of_those_layers(
    tmp_path: Path,
) -> None:
    """load_cross_encoder(layers=[0, 2]) is exactly a 2-layer BertConfig model holding the
    teacher's layers 0 and 2 (and its embeddings and head), not the teacher nor other layers."""
    from bridge.training import torch_model as tm

    folder = _tiny_checkpoint(tmp_path / "teacher")
    teacher = tm.load_cross_encoder(folder).eval()
    student = tm.load_cross_encoder(folder, layers=[0, 2]).eval()
    config = transformers.BertConfig.from_pretrained(str(folder))
    config.num_hidden_layers = 2
    hand = transformers.BertForSequenceClassification(config).eval()
    renamed: dict[str, Any] = {}
    for name, value in teacher.state_dict().items():
        if ".encoder.layer." in name:
            head, rest = name.split(".encoder.layer.")
            index, tail = rest.split(".", 1)
            if int(index) not in (0, 2):
                continue
            name = f"{head}.encoder.layer.{[0, 2].index(int(index))}.{tail}"
        renamed[name] = value
    hand.load_state_dict(renamed, strict=True)
    encoder = tm.PairEncoder(folder / "tokenizer.json", 16)
    with torch.inference_mode():
        batch = encoder(PAIRS)
        got = student(**batch, output_hidden_states=True)
        wanted = hand(**batch, output_hidden_states=True)
        full = teacher(**batch, output_hidden_states=True)
    assert len(student.base_model.encoder.layer) == 2 == student.config.num_hidden_layers
    assert len(got.hidden_states) == 3  # embeddings + the 2 kept layers: the forward uses 2
    assert torch.allclose(got.logits, wanted.logits, atol=1e-6)
    assert torch.allclose(got.hidden_states[-1], wanted.hidden_states[-1], atol=1e-6)
    assert not torch.allclose(got.hidden_states[-1], full.hidden_states[-1], atol=1e-3)
    assert not torch.allclose(got.logits, full.logits, atol=1e-3)


def test_fit_calls_after_step_once_per_step_with_the_model_training(tmp_path: Path) -> None:
    from bridge.training import torch_model as tm

    folder = _tiny_checkpoint(tmp_path / "base", layers=1)
    model = tm.load_cross_encoder(folder)
    encoder = tm.PairEncoder(folder / "tokenizer.json", 16)
    seen: list[tuple[int, int, bool]] = []
    batches = [(PAIRS[:2], [1.0, 0.0]), (PAIRS[2:], [0.5]), (PAIRS, [1.0, 0.0, 0.5])]
    log = tm.fit(
        model,
        encoder,
        lambda epoch: batches,
        tm.bce_loss,
        tm.FitSettings(epochs=2, batch_size=2, threads=1, progress=False),
        after_step=lambda log: seen.append((log.steps, log.pairs, model.training)),
    )
    assert [steps for steps, _, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert [pairs for _, pairs, _ in seen] == [2, 3, 6, 8, 9, 12]
    assert all(training for _, _, training in seen)
    assert log.steps == 6
    assert not model.training
