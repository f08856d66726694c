"""Warm-up on real data: cold users stream their valid.txt interactions, evaluated on test.txt.

Usage::

    python benchmarks/online_warmup.py --cdrib ../shared/data/cdrib --source game \\
        --target video --report-dir benchmarks/results/online_warmup [--bundle BUNDLE_DIR]

Without ``--bundle`` a bundle is trained first with the configuration of record
(:data:`RECORD_TRAIN`; ``--train-args`` adds or overrides ``coldbridge train`` flags).

For every test user of the target folder, the server (a real gRPC server on 127.0.0.1:0 with
its SQLite state in a temporary directory) receives the user's ``valid.txt`` rows as implicit
target events through ``StreamEvents``, in file order, up to 0, 1, 2, 3, 5, 10 and all events
per user. After each step every test user's scores are read with ``Score`` and ranked with the
trainer's protocol (``coldbridge_trainer.evaluate``: 999 sampled negatives with a fixed seed,
and the full ranking). On the same candidate lists, four curves (``warmup_report``):

* ``online``: the server's answers (step 0 *is* the static strategy);
* ``static``: the bundle's default strategy with no event (the server at step 0);
* ``history_only``: ``bundle.history.scores(items)`` of exactly the events streamed so far,
  ties broken by training popularity (step 0: popularity);
* ``warm``: the same on all of the user's valid events (the warm reference).

Plus ``popularity`` and ``same_vector``: every user gets the mean of the test users' static
score vectors (for a vector strategy, the scores of the mean user vector), a
same-list-for-everyone baseline that a personalised transfer must beat.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
for sub in ("server", "plugins", "protos", "trainer", "bundle", "cli"):
    sys.path.insert(0, str(ROOT / sub))

from coldbridge.v1 import events_pb2 as epb  # noqa: E402
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc  # noqa: E402
from coldbridge.v1 import recommender_pb2 as pb  # noqa: E402
from coldbridge_server import Settings, create_server, load_bundle  # noqa: E402
from coldbridge_server.bundle import resolve_bundle_dir  # noqa: E402
from coldbridge_trainer.data import CrossDomainDataset, load_cdrib  # noqa: E402
from coldbridge_trainer.evaluate import (  # noqa: E402
    EvalSplit,
    line_metrics,
    make_split,
    popularity_scorer,
    score_split,
)
from warmup_report import METRICS, HistoryOnly, compare, same_vector, write_report  # noqa: E402

STEPS: tuple[int | None, ...] = (0, 1, 2, 3, 5, 10, None)  # None = all of the user's events
RECORD_TRAIN = (
    "--strategies",
    "knn,itemmap,softmap,fusion",
    "--default-strategy",
    "fusion",
    "--threads",
    "1",
)
"""``coldbridge train`` flags of the configuration of record (``--train-args`` adds to them)."""


def train(cdrib: Path, source: str, target: str, out: Path, extra: list[str]) -> Path:
    """Train a bundle with the project's trainer (``coldbridge train``)."""
    from coldbridge_cli import main

    args = [
        "train",
        "--cdrib",
        str(cdrib),
        "--source",
        source,
        "--target",
        target,
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]
    if main(args) != 0:
        raise SystemExit("training failed")
    return resolve_bundle_dir(out)


def _lines(scores: np.ndarray, ev: EvalSplit, protocols: tuple[str, ...]) -> dict[str, Any]:
    per = {p: line_metrics(scores, ev, p) for p in protocols}
    return {p: {m: per[p][m] for m in METRICS} for p in protocols}


def measure(
    bundle_path: Path,
    dataset: CrossDomainDataset,
    steps: tuple[int | None, ...] = STEPS,
    protocols: tuple[str, ...] = ("sampled", "full"),
    n_boot: int = 1000,
    **settings: Any,
) -> dict[str, Any]:
    """All curves of the warm-up (module docstring) through a real server.

    Returns ``{step: online metrics}`` (``"0"``, ..., ``"all"``, the layout that
    ``coldbridge evaluate --warmup-json`` plots) plus ``"popularity"``, ``"static"``,
    ``"same_vector"``, ``"warm"``, ``"history_only": {step: metrics}``, ``"compare": {step:
    warmup_report.compare(...)}``, ``"steps"`` and ``"meta"``; metrics as ``score_split``'s
    ``to_dict()``. ``steps`` must start at 0. With ``protocols=("sampled",)`` only each test
    user's candidate items are scored after step 0 (several times faster).
    """
    if not steps or steps[0] != 0:
        raise ValueError("steps must start at 0 (the static strategy)")
    t0 = time.perf_counter()
    ev = make_split(dataset, dataset.test)
    bundle = load_bundle(bundle_path)
    if bundle.history is None:
        raise SystemExit("the bundle has no history part (train with --history)")
    items = dataset.target.item_ids
    valid: dict[str, list[str]] = {}
    for user, item in zip(dataset.valid.user_ids, dataset.valid.items.tolist(), strict=True):
        valid.setdefault(user, []).append(items[item])
    only = HistoryOnly(bundle.history, dict(bundle.target_item_index), items, _popularity(dataset))
    streams = [valid.get(u, []) for u in ev.users]
    warm_scores = only.scores(streams)
    warm = _lines(warm_scores, ev, protocols)
    results: dict[str, Any] = {
        "steps": ["all" if s is None else str(s) for s in steps],
        "popularity": _split(popularity_scorer(dataset)(ev.users), ev, protocols),
        "warm": _split(warm_scores, ev, protocols),
        "history_only": {},
        "compare": {},
    }
    idx = np.random.default_rng(0).integers(0, len(ev.users), size=(n_boot, len(ev.users)))
    static: dict[str, Any] = {}
    for key, upto, scores in _served(
        bundle, valid, items, only.known, ev, steps, protocols, settings
    ):
        if key == "0":
            static = _lines(scores, ev, protocols)
            results["static"] = _split(scores, ev, protocols)
            results["same_vector"] = _split(same_vector(scores, only.known), ev, protocols)
        history = only.scores([s[:upto] if upto is not None else s for s in streams])
        results[key] = _split(scores, ev, protocols)
        results["history_only"][key] = _split(history, ev, protocols)
        curves = {
            "online": _lines(scores, ev, protocols),
            "static": static,
            "history_only": _lines(history, ev, protocols),
            "warm": warm,
        }
        results["compare"][key] = compare(curves, ev.line_user, idx)
    results["meta"] = {
        "users": len(ev.users),
        "lines": len(ev.positives),
        "candidates_sha256": ev.digest,
        "n_boot": n_boot,
        "bootstrap_seed": 0,
        "bundle": bundle.version,
        "default_strategy": bundle.strategy,
        "history_events": list(bundle.history.events),
        "history_weight": list(bundle.history.history_weight),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return results


def _popularity(dataset: CrossDomainDataset) -> np.ndarray:
    return np.asarray(dataset.target.popularity(), dtype=np.float64)


def _split(scores: np.ndarray, ev: EvalSplit, protocols: tuple[str, ...]) -> dict[str, Any]:
    return score_split(scores, ev, protocols=protocols).to_dict()


def _served(
    bundle: Any,
    valid: dict[str, list[str]],
    items: list[str],
    known: np.ndarray,
    ev: EvalSplit,
    steps: tuple[int | None, ...],
    protocols: tuple[str, ...],
    settings: dict[str, Any],
) -> Any:
    """Yield ``(step key, events per user or None, scores [users, N_t])`` from a real server."""
    with tempfile.TemporaryDirectory() as state:
        config = Settings(
            host="127.0.0.1",
            port=0,
            state_dir=state,
            metrics_port=-1,
            max_request_ids=len(items),
            access_log=False,
            state_sync="NORMAL",
            **settings,
        )
        server, port = create_server(config, bundle=bundle)
        server.start()
        assert server.wait_until_ready(60)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield from _steps(channel, valid, items, known, ev, steps, protocols)
        finally:
            server.stop(None).wait()


def _steps(
    channel: grpc.Channel,
    valid: dict[str, list[str]],
    items: list[str],
    known: np.ndarray,
    ev: EvalSplit,
    steps: tuple[int | None, ...],
    protocols: tuple[str, ...],
) -> Any:
    events = events_pb2_grpc.EventsStub(channel)
    rec = recommender_pb2_grpc.RecommenderStub(channel)
    users = ev.users
    sampled = [  # the sampled protocol reads only the candidates of the user's lines
        np.intersect1d(ev.candidates[ev.line_user == row], known) for row in range(len(users))
    ]
    sent, sequence = dict.fromkeys(valid, 0), 0
    for step in steps:
        batches = []
        for user, rows in valid.items():
            upto = len(rows) if step is None else min(step, len(rows))
            new = [
                epb.Event(
                    event_id=f"{user}#{i}",
                    user_id=user,
                    item_id=rows[i],
                    domain=epb.DOMAIN_TARGET,
                    kind=epb.EVENT_KIND_IMPLICIT,
                )
                for i in range(sent[user], upto)
            ]
            sent[user] = upto
            if new:
                sequence += 1
                batches.append(epb.EventBatch(sequence=sequence, events=new))
        list(events.StreamEvents(iter(batches)))
        full = step == 0 or "full" in protocols
        columns = [known] * len(users) if full else sampled
        scores = np.full((len(users), len(items)), -np.inf, dtype=np.float32)
        for row, (user, cols) in enumerate(zip(users, columns, strict=True)):
            request = pb.ScoreRequest(user_id=user, item_ids=[items[i] for i in cols.tolist()])
            scores[row, cols] = [i.score for i in rec.Score(request).items]
        yield ("all" if step is None else str(step)), step, scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cdrib", type=Path, default=ROOT.parent / "shared" / "data" / "cdrib")
    parser.add_argument("--source", default="game")
    parser.add_argument("--target", default="video")
    parser.add_argument("--bundle", type=Path, help="bundle (or bundles dir); default: train one")
    parser.add_argument(
        "--train-args", default="", help="extra `coldbridge train` flags (after RECORD_TRAIN)"
    )
    parser.add_argument("--report-dir", type=Path, help="write online_warmup.{json,md,png} here")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also add {direction: results} to this JSON file (coldbridge evaluate "
        "--warmup-json plots it)",
    )
    args = parser.parse_args(argv)
    dataset = load_cdrib(args.cdrib, args.source, args.target)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        extra = [*RECORD_TRAIN, *shlex.split(args.train_args)]
        bundle = (
            resolve_bundle_dir(args.bundle)
            if args.bundle
            else train(args.cdrib, args.source, args.target, Path(tmp), extra)
        )
        trained = time.perf_counter() - t0
        results = measure(bundle, dataset, n_boot=args.n_boot)
    results["meta"]["command"] = shlex.join(
        ["python", "benchmarks/online_warmup.py", *(sys.argv[1:] if argv is None else argv)]
    )
    results["meta"]["train_args"] = None if args.bundle else extra
    results["meta"]["train_seconds"] = None if args.bundle else round(trained, 1)
    direction = f"{args.source} -> {args.target}"
    if args.report_dir is not None:
        print(write_report(args.report_dir, direction, results))
    else:
        from warmup_report import format_markdown

        print(format_markdown(results, direction))
    if args.json is not None:
        import json

        merged = json.loads(args.json.read_text(encoding="utf-8")) if args.json.exists() else {}
        merged[direction] = results  # one file holds both directions
        args.json.write_text(json.dumps(merged, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
