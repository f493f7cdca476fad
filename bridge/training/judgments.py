"""Read training judgments: Home Depot, a BEIR folder, Cranfield, or a JSONL of labelled pairs.

Every format becomes :class:`Judgments`: query texts, passage texts and, per query, the judged
passages with an integer *gain* and the dataset's gain scale. The training target of a pair is
``gain / scale`` (0 = irrelevant … 1 = best grade), so graded labels stay graded; the same integer
gains feed the product's eval (``bridge.eval``), so held-out figures use the eval's own scale.

Bad input fails with one line naming the file (and the line when there is one).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import EvalError, TrainingError
from bridge.eval.datasets import (
    HOMEDEPOT_GAIN_SCALE,
    Dataset,
    detect_format,
    homedepot_gain,
    jsonl_records,
    load_beir,
    load_cranfield,
)

# Home Depot grades are 1..3: (grade - 1) x 12 is the eval's gain, so the best grade has gain 24.
HOMEDEPOT_MAX_GAIN = 2 * HOMEDEPOT_GAIN_SCALE
# JSONL labels are numbers in [0, 1]; they become integer gains on this scale for the eval.
JSONL_GAIN_SCALE = 100


@dataclass(frozen=True)
class Judgments:
    """Queries, passages and graded judgments (qid -> pid -> integer gain in 0..scale)."""

    name: str
    queries: dict[str, str]
    passages: dict[str, str]
    gains: dict[str, dict[str, int]]
    scale: int
    text_fields: tuple[str, ...]
    source: str

    def target(self, qid: str, pid: str) -> float:
        return self.gains[qid][pid] / self.scale

    @property
    def pair_count(self) -> int:
        return sum(len(judged) for judged in self.gains.values())


def load_judgments(path: Path) -> Judgments:
    """Judgments from a dataset folder (Home Depot, BEIR, Cranfield) or a ``.jsonl`` file."""
    path = Path(path)
    if not path.exists():
        raise TrainingError(f"{path}: judgments not found")
    if path.is_file():
        return load_pairs_jsonl(path)
    try:
        kind = detect_format(path)
    except EvalError as exc:
        raise TrainingError(str(exc)) from None
    if kind == "homedepot":
        return load_homedepot_judgments(path)
    try:
        dataset = load_beir(path) if kind == "beir" else load_cranfield(path)
    except EvalError as exc:
        raise TrainingError(str(exc)) from None
    return _from_dataset(dataset, path)


def _from_dataset(dataset: Dataset, path: Path) -> Judgments:
    passages = {
        pid: "\n".join(t for t in (fields.get(f, "") for f in dataset.text_fields) if t)
        for pid, fields in dataset.corpus.items()
    }
    gains: dict[str, dict[str, int]] = {}
    for qid, judged in dataset.qrels.items():
        if qid not in dataset.queries:
            continue
        known = {pid: gain for pid, gain in judged.items() if passages.get(pid)}
        if not known:
            raise TrainingError(
                f"{path}: query {qid} ({dataset.queries[qid]!r}) has no passages: none of its "
                "judged documents is in the corpus with text"
            )
        gains[qid] = known
    if not gains:
        raise TrainingError(f"{path}: no judgments")
    scale = max(max(judged.values()) for judged in gains.values())
    if scale <= 0:
        raise TrainingError(f"{path}: every judgment has grade 0; nothing to learn from")
    return Judgments(
        name=dataset.name,
        queries={qid: dataset.queries[qid] for qid in gains},
        passages=passages,
        gains=gains,
        scale=scale,
        # several fields are joined into one passage (as the rerank stage joins them), indexed
        # under one field when training makes its own index
        text_fields=dataset.text_fields if len(dataset.text_fields) == 1 else ("text",),
        source=f"{path} (graded qrels, target = grade / {scale})",
    )


def load_homedepot_judgments(directory: Path) -> Judgments:
    """products.jsonl + judgments.tsv (query, product_uid, average grade 1..3)."""
    products = directory / "products.jsonl"
    judgments = directory / "judgments.tsv"
    passages: dict[str, str] = {}
    for number, record in jsonl_records(products, TrainingError):
        if "product_uid" not in record:
            raise TrainingError(f"{products}:{number}: expected an object with product_uid")
        passages[str(record["product_uid"])] = str(record.get("title") or "")
    queries: dict[str, str] = {}
    gains: dict[str, dict[str, int]] = {}
    with judgments.open(encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if number == 1 and row[0] == "query":
                continue
            if len(row) != 3:
                raise TrainingError(
                    f"{judgments}:{number}: expected 'query<TAB>product_uid<TAB>relevance'"
                )
            text, pid, grade_text = row[0].strip(), row[1].strip(), row[2].strip()
            try:
                grade = float(grade_text)
            except ValueError:
                raise TrainingError(
                    f"{judgments}:{number}: relevance {grade_text!r} is not a number"
                ) from None
            if not 1.0 <= grade <= 3.0:
                raise TrainingError(f"{judgments}:{number}: relevance {grade_text} is outside 1..3")
            if not text:
                raise TrainingError(f"{judgments}:{number}: empty query")
            if not passages.get(pid):
                raise TrainingError(
                    f"{judgments}:{number}: query {text!r} has no passage: product {pid} is "
                    f"not in {products.name} (or has no title)"
                )
            qid = query_id(text)
            queries[qid] = text
            gains.setdefault(qid, {})[pid] = homedepot_gain(grade)
    if not gains:
        raise TrainingError(f"{judgments}: no judgments")
    return Judgments(
        name=directory.name,
        queries=queries,
        passages=passages,
        gains=gains,
        scale=HOMEDEPOT_MAX_GAIN,
        text_fields=("title",),
        source=f"{directory} (Home Depot grades 1..3, target = (grade - 1) / 2)",
    )


def load_pairs_jsonl(path: Path) -> Judgments:
    """One ``{"query", "passage", "label"}`` object per line; label is a number in [0, 1]."""
    queries: dict[str, str] = {}
    passages: dict[str, str] = {}
    pid_of: dict[str, str] = {}
    gains: dict[str, dict[str, int]] = {}
    for number, record in jsonl_records(path, TrainingError):
        text = record.get("query")
        if not isinstance(text, str) or not text.strip():
            raise TrainingError(f'{path}:{number}: missing or empty "query"')
        passage = record.get("passage")
        if not isinstance(passage, str) or not passage.strip():
            raise TrainingError(f"{path}:{number}: query {text!r} has no passage")
        label = record.get("label")
        if isinstance(label, bool) or not isinstance(label, int | float):
            raise TrainingError(f'{path}:{number}: "label" must be a number in [0, 1]')
        if not 0.0 <= float(label) <= 1.0:
            raise TrainingError(f"{path}:{number}: label {label} is outside [0, 1]")
        qid = query_id(text.strip())
        queries[qid] = text.strip()
        pid = pid_of.setdefault(passage, f"p{len(pid_of)}")
        passages[pid] = passage
        gains.setdefault(qid, {})[pid] = round(float(label) * JSONL_GAIN_SCALE)
    if not gains:
        raise TrainingError(f"{path}: no judgments (empty file)")
    return Judgments(
        name=path.stem,
        queries=queries,
        passages=passages,
        gains=gains,
        scale=JSONL_GAIN_SCALE,
        text_fields=("text",),
        source=f"{path} (labels in [0, 1] used as targets)",
    )


def query_id(text: str) -> str:
    """A stable id from the query text (the same text is the same query in every file)."""
    return "q" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
