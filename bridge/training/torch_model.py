"""The PyTorch side (the `train` extra): load a BERT-family checkpoint, fine-tune it, save it.

Only this module imports torch and transformers, and only when a command runs, so the core
install never needs them. Pairs are tokenized by the checkpoint's own ``tokenizer.json`` through
``tokenizers``, the library the runtime scorer uses, so training and serving see the same ids.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bridge.errors import TrainingError
from bridge.eval.progress import progress_bar

logger = logging.getLogger(__name__)

T = TypeVar("T")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
PRECISIONS = ("auto", "bf16", "fp32")
# CPU flags of native bf16 arithmetic; without them torch emulates bf16, slower than fp32
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class FitSettings:
    epochs: int = 1
    batch_size: int = 32
    lr: float = 4e-5
    max_length: int = 64
    seed: int = 13
    warmup: float = 0.1
    weight_decay: float = 0.01
    # The head (pooler + classifier) is untrained when the base is a bi-encoder: the classifier
    # is new and a mean-pooling bi-encoder never trained its pooler. It may learn faster.
    head_lr_scale: float = 1.0
    # The word-embedding table is half the parameters. Frozen (the default), a step skips its
    # dense gradient and AdamW update and the vocabulary keeps what pre-training taught it;
    # trained, the model can adapt the catalogue's vocabulary at a small cost per step.
    train_word_embeddings: bool = False
    threads: int | None = None
    progress: bool = True
    # Forward pass under bf16 autocast (weights, gradients and optimizer stay fp32): ~1.5x the
    # pairs/s of fp32 on a CPU with native bf16, same loss curve. "auto": bf16 where the CPU has
    # it (see cpu_has_bf16), fp32 elsewhere. The exported ONNX graph is fp32 either way.
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise TrainingError(
                f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.epochs < 1 or self.batch_size < 1 or self.max_length < 8:
            raise TrainingError("--epochs and --batch-size must be >= 1, --max-length >= 8")
        if not 0.0 < self.lr < 1.0:
            raise TrainingError(f"--lr must be in (0, 1), got {self.lr}")
        if not 0.0 <= self.warmup < 1.0:
            raise TrainingError(f"--warmup must be in [0, 1), got {self.warmup}")


@dataclass
class FitLog:
    """What happened: steps, pairs seen, the loss curve, time and speed."""

    steps: int = 0
    pairs: int = 0
    seconds: float = 0.0
    losses: list[tuple[int, float]] = field(default_factory=list)  # (pairs seen, mean loss)
    precision: str = "fp32"  # what the forward pass ran in ("auto" resolved)

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds else 0.0

    def record(self) -> dict[str, Any]:
        """The ``log`` entry of training.json."""
        return {
            "steps": self.steps,
            "pairs": self.pairs,
            "seconds": round(self.seconds, 1),
            "pairs_per_second": round(self.pairs_per_second, 1),
            "precision": self.precision,
            "losses": self.losses,
        }


def require_stack() -> None:
    """Fail before any work when the `train` extra is missing (the CLI names the extra)."""
    import torch  # noqa: F401
    import transformers  # noqa: F401


def check_base(base: Path) -> None:
    """A one-line error if ``base`` is not a usable checkpoint folder."""
    from bridge.models.convert_weights import missing_files

    if not base.is_dir():
        raise TrainingError(f"{base}: base checkpoint folder not found")
    missing = missing_files(base)
    if missing:
        hint = " (no weights)" if "model.safetensors" in missing else ""
        raise TrainingError(f"{base}: base checkpoint lacks {', '.join(missing)}{hint}")


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU does bf16 arithmetic natively (AVX512-BF16 or AMX-BF16 in the flags of
    ``/proc/cpuinfo``; False where that file is missing, e.g. macOS)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(BF16_CPU_FLAGS & set(line.partition(":")[2].split()))
    return False


def resolve_precision(requested: str) -> str:
    """``auto`` -> bf16 on a CPU with native bf16, else fp32; bf16 and fp32 as asked."""
    if requested == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    return requested


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int | None) -> None:
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)


def load_cross_encoder(base: Path, *, layers: Sequence[int] | None = None) -> Any:
    """``BertForSequenceClassification`` with one logit; ``layers`` keeps only those layers."""
    check_base(base)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(base), num_labels=1, ignore_mismatched_sizes=True
        )
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(f"{base}: cannot load the checkpoint: {exc}") from None
    if layers is not None:
        import torch

        encoder = model.base_model.encoder
        total = len(encoder.layer)
        if not layers or max(layers) >= total:
            raise TrainingError(f"{base} has {total} layers; cannot keep {list(layers)}")
        encoder.layer = torch.nn.ModuleList([encoder.layer[i] for i in layers])
        model.config.num_hidden_layers = len(layers)
    return model


def spread_layers(total: int, keep: int) -> list[int]:
    """``keep`` layer indices spread over ``total``, always the first and the last."""
    if keep < 1 or keep > total:
        raise TrainingError(f"--student-layers must be between 1 and {total}, got {keep}")
    if keep == 1:
        return [total - 1]
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def layer_count(base: Path) -> int:
    import json

    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    return int(config.get("num_hidden_layers", 0))


class PairEncoder:
    """(query, passage) batches -> padded int64 tensors, with the checkpoint's tokenizer.json."""

    def __init__(self, tokenizer_json: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self.tokenizer.enable_truncation(max_length=max_length)
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id)

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        import torch

        encodings = self.tokenizer.encode_batch(list(pairs))
        return {
            "input_ids": torch.tensor([e.ids for e in encodings], dtype=torch.long),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings], dtype=torch.long),
            "token_type_ids": torch.tensor([e.type_ids for e in encodings], dtype=torch.long),
        }


Batch = tuple[list[tuple[str, str]], Any]  # pairs, targets (anything the loss understands)
Loss = Callable[[Any, Any], Any]  # (logits [n], targets) -> scalar tensor


def fit(
    model: Any,
    encoder: PairEncoder,
    batches: Callable[[int], list[Batch]],
    loss_fn: Loss,
    settings: FitSettings,
    *,
    desc: str = "training",
    after_step: Callable[[FitLog], None] | None = None,
) -> FitLog:
    """AdamW with linear warm-up and decay; ``batches(epoch)`` gives that epoch's batches.
    ``after_step(log)`` runs after every optimizer step (a learning curve's checks; it finds the
    model in train mode and must leave it so)."""
    import torch

    epochs = [batches(epoch) for epoch in range(settings.epochs)]
    total_steps = sum(len(e) for e in epochs)
    total_pairs = sum(len(pairs) for e in epochs for pairs, _ in e)
    if not total_steps:
        raise TrainingError("nothing to train on")
    model.base_model.embeddings.word_embeddings.weight.requires_grad_(
        settings.train_word_embeddings
    )
    no_decay = ("bias", "LayerNorm.weight")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for head in (False, True):
        lr = settings.lr * (settings.head_lr_scale if head else 1.0)
        for decay in (True, False):
            params = [
                p for n, p in trainable if is_head(n) == head and n.endswith(no_decay) != decay
            ]
            if params:
                wd = settings.weight_decay if decay else 0.0
                groups.append({"params": params, "lr": lr, "weight_decay": wd})
    optimizer = torch.optim.AdamW(groups, lr=settings.lr)
    warmup = max(1, int(total_steps * settings.warmup))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    log = FitLog(precision=resolve_precision(settings.precision))
    bf16 = log.precision == "bf16"
    model.train()
    bar = progress_bar(total_pairs, desc=desc, unit="pair", enabled=settings.progress)
    started = time.perf_counter()
    running: list[float] = []
    every = max(1, total_steps // 50)
    try:
        for epoch_batches in epochs:
            for pairs, targets in epoch_batches:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(**encoder(pairs)).logits.squeeze(-1)
                loss = loss_fn(logits.float(), targets)  # the loss in fp32
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingError(f"loss became {value} at step {log.steps}: lower --lr")
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for _, p in trainable], 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                log.steps += 1
                log.pairs += len(pairs)
                running.append(value)
                if log.steps % every == 0 or log.steps == total_steps:
                    log.losses.append((log.pairs, sum(running) / len(running)))
                    if hasattr(bar, "set_postfix"):
                        bar.set_postfix(loss=f"{log.losses[-1][1]:.4f}")
                    running = []
                bar.update(len(pairs))
                if after_step is not None:
                    after_step(log)
    finally:
        bar.close()
        log.seconds = time.perf_counter() - started
    model.eval()
    return log


def is_head(name: str) -> bool:
    """The pooler and the classifier: what sits between the encoder and the score."""
    return name.startswith("classifier.") or ".pooler." in name


def length_buckets(
    items: Sequence[T], size: int, length: Callable[[T], int], seed: int, window: int = 50
) -> list[list[T]]:
    """Shuffled batches of ``size`` items of similar length: on CPU a padded token costs as much
    as a real one, so sorting each run of ``window`` batches by length before cutting it roughly
    halves the work on short product titles. The batch order is shuffled again."""
    rng = random.Random(seed)
    order = list(items)
    rng.shuffle(order)
    batches: list[list[T]] = []
    for start in range(0, len(order), size * window):
        run = sorted(order[start : start + size * window], key=length)
        batches.extend(run[i : i + size] for i in range(0, len(run), size))
    rng.shuffle(batches)
    return batches


def bce_loss(logits: Any, targets: Any) -> Any:
    """Pointwise binary cross-entropy against graded targets in [0, 1] (not flattened to 0/1)."""
    import torch

    target = torch.as_tensor(targets, dtype=logits.dtype)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, target)


def save_checkpoint(model: Any, tokenizer_dir: Path, out: Path) -> None:
    """safetensors + config.json + the tokenizer files: a folder the converter (and `train
    --base`, `distill --teacher`) reads."""
    out.mkdir(parents=True, exist_ok=True)
    model.config.architectures = ["BertForSequenceClassification"]
    model.save_pretrained(str(out), safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copyfile(tokenizer_dir / name, out / name)


def predict_logits(model: Any, encoder: PairEncoder, pairs: Sequence[tuple[str, str]]) -> Any:
    import torch

    with torch.inference_mode():
        return model(**encoder(pairs)).logits.squeeze(-1)
