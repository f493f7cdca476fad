"""Loaders for the evaluation collections: BEIR layout, TREC qrels, Home Depot, Cranfield.

Every loader returns a :class:`Dataset` with integer gains, so ir-measures and ranx (which both want
integer relevance) see the same numbers. Gains are documented per format below; documents that are
never judged for a query count as non-relevant (gain 0) when the metrics are computed.
"""

from __future__ import annotations

import csv
import json
import logging
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import BridgeError, EvalError

logger = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]

# Home Depot grades are averages of 1..3 with denominators 2, 3 and 4; (grade - 1) * 12 is an exact
# integer and proportional to the shared model README's gain (grade - 1), so NDCG is unchanged.
HOMEDEPOT_GAIN_SCALE = 12


@dataclass(frozen=True)
class Dataset:
    """A corpus, its queries and graded judgments (qid -> doc id -> integer gain >= 0)."""

    name: str
    corpus: Mapping[str, Mapping[str, str]]
    queries: Mapping[str, str]
    qrels: Qrels
    text_fields: tuple[str, ...] = ("title", "text")
    notes: tuple[str, ...] = field(default=())

    def judged_queries(self) -> dict[str, str]:
        """Queries with at least one judgment, in file order."""
        return {qid: text for qid, text in self.queries.items() if qid in self.qrels}


def _require_file(path: Path, error: type[BridgeError] = EvalError) -> Path:
    if not path.is_file():
        raise error(f"dataset file not found: {path}")
    return path


def jsonl_records(
    path: Path, error: type[BridgeError] = EvalError
) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) for each non-blank line; bad lines raise ``error`` naming file:line
    (the eval raises EvalError, training TrainingError)."""
    with _require_file(path, error).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise error(f"{path}:{number}: expected a JSON object")
            yield number, record


def _check_nonempty(qrels: Qrels, path: Path) -> Qrels:
    if not qrels:
        raise EvalError(f"qrels file has no judgments: {path}")
    return qrels


def load_trec_qrels(path: Path) -> Qrels:
    """TREC qrels (`qid iteration docid grade`, whitespace separated); negative grades become 0."""
    qrels: Qrels = {}
    with _require_file(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise EvalError(f"{path}:{number}: expected 'qid iter docid grade'")
            qid, _, docid, grade = parts
            qrels.setdefault(qid, {})[docid] = max(0, _int_grade(grade, path, number))
    return _check_nonempty(qrels, path)


def load_beir_qrels(path: Path) -> Qrels:
    """BEIR qrels TSV (`query-id corpus-id score`, optional header line)."""
    qrels: Qrels = {}
    with _require_file(path).open(encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or not "".join(row).strip():
                continue
            if number == 1 and row[0] == "query-id":
                continue
            if len(row) < 3:
                raise EvalError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score'")
            qrels.setdefault(row[0], {})[row[1]] = max(0, _int_grade(row[2], path, number))
    return _check_nonempty(qrels, path)


def load_qrels(path: Path) -> Qrels:
    """TREC (4 columns) or BEIR TSV (3 columns) qrels, chosen from the first data line."""
    with _require_file(path).open(encoding="utf-8") as handle:
        first = next((line for line in handle if line.strip()), "")
    if not first:
        raise EvalError(f"qrels file is empty: {path}")
    return load_trec_qrels(path) if len(first.split()) == 4 else load_beir_qrels(path)


def load_queries(path: Path) -> dict[str, str]:
    """Queries as BEIR JSONL (`_id`, `text`) or TSV (`qid<TAB>text`)."""
    queries: dict[str, str] = {}
    if path.suffix == ".jsonl":
        for _, record in jsonl_records(path):
            queries[str(record["_id"])] = str(record["text"])
    else:
        with _require_file(path).open(encoding="utf-8") as handle:
            for line in handle:
                qid, _, text = line.rstrip("\n").partition("\t")
                if qid and text:
                    queries[qid] = text
    if not queries:
        raise EvalError(f"queries file has no queries: {path}")
    return queries


def _int_grade(text: str, path: Path, number: int) -> int:
    try:
        return int(float(text))
    except ValueError as exc:
        raise EvalError(f"{path}:{number}: grade {text!r} is not a number") from exc


def load_beir(directory: Path, split: str = "test") -> Dataset:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv."""
    corpus = {
        str(r["_id"]): {"title": str(r.get("title") or ""), "text": str(r.get("text") or "")}
        for _, r in jsonl_records(directory / "corpus.jsonl")
    }
    return Dataset(
        name=directory.name,
        corpus=corpus,
        queries=load_queries(directory / "queries.jsonl"),
        qrels=load_beir_qrels(directory / "qrels" / f"{split}.tsv"),
        text_fields=("title", "text"),
        notes=("Graded qrels as given (gain = grade).",),
    )


def homedepot_gain(grade: float) -> int:
    """Home Depot average grade (1..3) -> integer gain proportional to grade - 1."""
    return max(0, round((grade - 1.0) * HOMEDEPOT_GAIN_SCALE))


def load_homedepot(
    directory: Path, *, max_queries: int | None = None, seed: int = 13, min_judged: int = 3
) -> Dataset:
    """Home Depot products.jsonl + judgments.tsv.

    Queries become ids `hd00000`... in file order. With `max_queries`, a seeded sample of queries
    that have at least `min_judged` judged products with mixed grades (not all equal) is kept, so
    the measure can tell orderings apart; the README of the result says so.
    """
    corpus = {
        str(r["product_uid"]): {"title": str(r.get("title") or "")}
        for _, r in jsonl_records(directory / "products.jsonl")
    }
    path = _require_file(directory / "judgments.tsv")
    by_text: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if number == 1 and row and row[0] == "query":
                continue
            if len(row) != 3:
                continue
            try:
                grade = float(row[2])
            except ValueError as exc:
                raise EvalError(f"{path}:{number}: grade {row[2]!r} is not a number") from exc
            by_text.setdefault(row[0].strip(), {})[row[1]] = grade
    if not by_text:
        raise EvalError(f"qrels file has no judgments: {path}")
    texts = list(by_text)
    notes = [
        "Gain = (grade - 1) x 12 (proportional to grade - 1): grade 1 (irrelevant) has gain 0.",
        "Products never judged for a query count as non-relevant (they are unknown).",
    ]
    if max_queries is not None and max_queries < len(texts):
        eligible = [
            t for t in texts if len(by_text[t]) >= min_judged and len(set(by_text[t].values())) > 1
        ]
        texts = sorted(random.Random(seed).sample(eligible, min(max_queries, len(eligible))))
        notes.append(
            f"Query subset: {len(texts)} queries sampled with seed {seed} among those with at "
            f"least {min_judged} judged products of mixed grades."
        )
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    for number, text in enumerate(texts):
        qid = f"hd{number:05d}"
        queries[qid] = text
        qrels[qid] = {pid: homedepot_gain(g) for pid, g in by_text[text].items()}
    return Dataset(
        name=directory.name,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        text_fields=("title",),
        notes=tuple(notes),
    )


def _smart_records(path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (`.I` id, {field letter: text}) from a SMART-format file."""
    current_id: str | None = None
    fields: dict[str, list[str]] = {}
    current_field: str | None = None
    with _require_file(path).open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith(".I"):
                if current_id is not None:
                    yield current_id, {k: " ".join(v).strip() for k, v in fields.items()}
                current_id = line[2:].strip()
                fields = {}
                current_field = None
            elif len(line) >= 2 and line[0] == "." and line[1].isalpha() and line[2:].strip() == "":
                current_field = line[1]
                fields.setdefault(current_field, [])
            elif current_field is not None:
                fields[current_field].append(line.strip())
    if current_id is not None:
        yield current_id, {k: " ".join(v).strip() for k, v in fields.items()}


def cranfield_gain(grade: int) -> int:
    """Cranfield code 1 (complete answer) .. 4 (minimum interest) -> gain 4..1; -1 -> 0."""
    return 5 - grade if 1 <= grade <= 4 else 0


def load_cranfield(directory: Path) -> Dataset:
    """Cranfield in SMART format: cran.all.1400, cran.qry, cranqrel (`query doc code`).

    The n-th query in cran.qry is query n in cranqrel (the `.I` numbers are not 1..225).
    """
    corpus = {
        doc_id: {"title": f.get("T", ""), "text": f.get("W", "")}
        for doc_id, f in _smart_records(directory / "cran.all.1400")
    }
    queries = {
        str(n): f.get("W", "")
        for n, (_, f) in enumerate(_smart_records(directory / "cran.qry"), start=1)
    }
    path = _require_file(directory / "cranqrel")
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.split()
            if len(parts) != 3:
                continue
            gain = cranfield_gain(_int_grade(parts[2], path, number))
            qrels.setdefault(parts[0], {})[parts[1]] = gain
    return Dataset(
        name=directory.name,
        corpus=corpus,
        queries=queries,
        qrels=_check_nonempty(qrels, path),
        text_fields=("title", "text"),
        notes=(
            "Gain = 5 - Cleverdon code (1 complete answer -> 4 ... 4 minimum interest -> 1; "
            "-1 -> 0); unjudged documents count as non-relevant.",
        ),
    )


def detect_format(directory: Path) -> str:
    """`beir`, `homedepot` or `cranfield`, from the files present in `directory`."""
    if (directory / "corpus.jsonl").is_file() and (directory / "queries.jsonl").is_file():
        return "beir"
    if (directory / "products.jsonl").is_file() and (directory / "judgments.tsv").is_file():
        return "homedepot"
    if (directory / "cran.all.1400").is_file() and (directory / "cranqrel").is_file():
        return "cranfield"
    if not directory.is_dir():
        raise EvalError(f"dataset folder not found: {directory}")
    raise EvalError(
        f"cannot tell the dataset format of {directory}: expected a BEIR folder "
        "(corpus.jsonl, queries.jsonl, qrels/), Home Depot (products.jsonl, judgments.tsv) "
        "or Cranfield (cran.all.1400, cran.qry, cranqrel)"
    )


def load_dataset(directory: Path, *, max_queries: int | None = None, seed: int = 13) -> Dataset:
    """Load any supported folder; `max_queries` limits the judged queries (seeded sample)."""
    kind = detect_format(directory)
    if kind == "homedepot":
        return load_homedepot(directory, max_queries=max_queries, seed=seed)
    dataset = load_beir(directory) if kind == "beir" else load_cranfield(directory)
    return limit_queries(dataset, max_queries, seed=seed)


def limit_queries(dataset: Dataset, max_queries: int | None, *, seed: int = 13) -> Dataset:
    """Keep judged queries only, and at most `max_queries` of them (seeded sample, file order)."""
    judged = dataset.judged_queries()
    if not judged:
        raise EvalError(f"no query of {dataset.name} has judgments")
    notes = dataset.notes
    unjudged = len(dataset.queries) - len(judged)
    if unjudged:
        logger.warning("%d queries of %s have no judgments; skipped", unjudged, dataset.name)
        notes = (*notes, f"{unjudged} queries without judgments skipped.")
    if max_queries is not None and max_queries < len(judged):
        chosen = set(random.Random(seed).sample(sorted(judged), max_queries))
        judged = {qid: text for qid, text in judged.items() if qid in chosen}
    return Dataset(
        name=dataset.name,
        corpus=dataset.corpus,
        queries=judged,
        qrels={qid: dataset.qrels[qid] for qid in judged},
        text_fields=dataset.text_fields,
        notes=notes,
    )
