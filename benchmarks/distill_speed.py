"""A distilled student against its teacher: time to score 20 Home Depot titles, same run.

Both are loaded through `bridge.Ranker` (the product's scorer) from the folders `rerank-bridge
train` and `distill` wrote. Each repetition scores one (query, 20 titles) request with the teacher
and the same request with the student, back to back in alternating order, so both see the same
machine load. Prints one JSON line per model and one with the p50 ratio teacher / student.
``--student`` may be repeated (e.g. the student and the int8 graphs `--int8` or `rerank-bridge
models convert --int8` wrote): every model then scores each request, in an order that rotates.

    .venv/bin/python benchmarks/distill_speed.py --teacher DIR --student DIR --reps 60
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def homedepot_requests(
    shared: Path, count: int, size: int, seed: int
) -> list[tuple[str, list[str]]]:
    """(query, `size` titles) requests drawn from the shared Home Depot judgments and catalogue."""
    from bridge.eval.datasets import load_homedepot

    dataset = load_homedepot(shared / "data" / "homedepot")
    titles = [fields["title"] for fields in dataset.corpus.values() if fields.get("title")]
    rng = random.Random(seed)
    queries = rng.sample(sorted(dataset.queries.values()), count)
    return [(q, rng.sample(titles, size)) for q in queries]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, action="append", required=True)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--titles", type=int, default=20)
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)

    from bridge.ranker import Ranker

    dirs = {"teacher": args.teacher}
    for number, student in enumerate(args.student):
        dirs["student" if number == 0 else f"student{number + 1}"] = student
    rankers = {name: Ranker(model_name=str(folder)) for name, folder in dirs.items()}
    requests = homedepot_requests(args.shared, args.reps, args.titles, args.seed)
    for ranker in rankers.values():  # load sessions and warm caches outside the timing
        for query, titles in requests[:3]:
            ranker.score_pairs([(query, t) for t in titles])
    times: dict[str, list[float]] = {name: [] for name in rankers}
    for rep, (query, titles) in enumerate(requests):
        names = list(rankers)
        shift = rep % len(names)
        order = names[shift:] + names[:shift]
        if rep // len(names) % 2:
            order.reverse()
        pairs = [(query, t) for t in titles]
        for name in order:
            started = time.perf_counter()
            rankers[name].score_pairs(pairs)
            times[name].append((time.perf_counter() - started) * 1000.0)
            time.sleep(0.005)
    p50: dict[str, float] = {}
    for name, values in times.items():
        values.sort()
        p50[name] = statistics.median(values)
        row: dict[str, Any] = {
            "model": name,
            "dir": str(dirs[name]),
            "titles": args.titles,
            "reps": args.reps,
            "p50_ms": round(p50[name], 2),
            "p90_ms": round(values[int(0.9 * (len(values) - 1))], 2),
        }
        print(json.dumps(row))
    for name in dirs:
        if name != "teacher":
            row = {
                "ratio": f"teacher_p50 / {name}_p50",
                "value": round(p50["teacher"] / p50[name], 2),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
