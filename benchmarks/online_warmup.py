"""Warm-up on real data: cold users stream their valid.txt interactions, evaluated on test.txt.

Usage::

    python benchmarks/online_warmup.py --cdrib ../shared/data/cdrib --source game \\
        --target video [--bundle BUNDLE_DIR]   # trains a bundle first when --bundle is omitted

For every cold user of the target folder, the server (a real gRPC server on 127.0.0.1:0 with
its SQLite state in a temporary directory) receives the user's ``valid.txt`` rows as implicit
target events through ``StreamEvents``, in file order, up to 0, 1, 2, 5 and all events per
user. After each step every test user's scores over all target items are read with ``Score``
and ranked with the trainer's protocol (``coldbridge_trainer.evaluate``: 999 sampled negatives
with a fixed seed, and the full ranking). Step 0 *is* the static bridge. Popularity is the
reference floor. Prints HR@10 / NDCG@10 / MRR per step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for sub in ("server", "plugins", "protos", "trainer", "bundle", "cli"):
    sys.path.insert(0, str(ROOT / sub))

from coldbridge.v1 import events_pb2 as epb  # noqa: E402
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc  # noqa: E402
from coldbridge.v1 import recommender_pb2 as pb  # noqa: E402
from coldbridge_server import Settings, create_server, load_bundle  # noqa: E402
from coldbridge_server.bundle import resolve_bundle_dir  # noqa: E402
from coldbridge_trainer.data import CrossDomainDataset, load_cdrib  # noqa: E402
from coldbridge_trainer.evaluate import make_split, popularity_scorer, score_split  # noqa: E402

STEPS: tuple[int | None, ...] = (0, 1, 2, 5, None)  # None = all of the user's events
COLUMNS = (
    ("sampled", "HR@10"),
    ("sampled", "NDCG@10"),
    ("sampled", "MRR"),
    ("full", "HR@10"),
    ("full", "NDCG@10"),
    ("full", "MRR"),
)


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


def measure(
    bundle_path: Path,
    dataset: CrossDomainDataset,
    steps: tuple[int | None, ...] = STEPS,
    protocols: tuple[str, ...] = ("sampled", "full"),
    **settings: Any,
) -> dict[str, dict]:
    """Metrics per step (``"0"``, ``"1"``, ``"2"``, ``"5"``, ``"all"``) plus ``"popularity"``.

    With ``protocols=("sampled",)`` only each test user's candidate items are scored (a few
    hundred to a few thousand instead of every target item: several times faster).
    """
    ev = make_split(dataset, dataset.test)
    bundle = load_bundle(bundle_path)
    items = dataset.target.item_ids
    known = [i for i, t in enumerate(items) if t in bundle.target_item_index]
    valid: dict[str, list[str]] = {}
    for user, item in zip(dataset.valid.user_ids, dataset.valid.items.tolist(), strict=True):
        valid.setdefault(user, []).append(items[item])
    results = {
        "popularity": score_split(
            popularity_scorer(dataset)(ev.users), ev, protocols=protocols
        ).to_dict()
    }
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
                results.update(_steps(channel, valid, items, np.array(known), ev, steps, protocols))
        finally:
            server.stop(None).wait()
    return results


def _steps(
    channel: grpc.Channel,
    valid: dict[str, list[str]],
    items: list[str],
    known: np.ndarray,
    ev: Any,
    steps: tuple[int | None, ...],
    protocols: tuple[str, ...],
) -> dict[str, dict]:
    events = events_pb2_grpc.EventsStub(channel)
    rec = recommender_pb2_grpc.RecommenderStub(channel)
    users = ev.users
    if "full" in protocols:
        columns = [known] * len(users)
    else:  # the sampled protocol reads only the candidates of the user's lines
        columns = [
            np.intersect1d(ev.candidates[ev.line_user == row], known) for row in range(len(users))
        ]
    results, sent, sequence = {}, dict.fromkeys(valid, 0), 0
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
        scores = np.full((len(users), len(items)), -np.inf, dtype=np.float32)
        for row, (user, cols) in enumerate(zip(users, columns, strict=True)):
            request = pb.ScoreRequest(user_id=user, item_ids=[items[i] for i in cols.tolist()])
            scores[row, cols] = [i.score for i in rec.Score(request).items]
        results["all" if step is None else str(step)] = score_split(
            scores, ev, protocols=protocols
        ).to_dict()
    return results


def format_table(results: dict[str, dict], title: str) -> str:
    names = {
        "0": "static bridge (0 events)",
        "1": "online, 1 event/user",
        "2": "online, 2 events/user",
        "5": "online, 5 events/user",
        "all": "online, all valid events",
        "popularity": "popularity",
    }
    head = " ".join(f"{p[:4]} {m:>8}" for p, m in COLUMNS)
    lines = [title, f"{'':28} {head}"]
    for key, name in names.items():
        cells = " ".join(f"{results[key][p]['line'][m]:13.4f}" for p, m in COLUMNS)
        lines.append(f"{name:28} {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrib", type=Path, default=ROOT.parent / "shared" / "data" / "cdrib")
    parser.add_argument("--source", default="game")
    parser.add_argument("--target", default="video")
    parser.add_argument("--bundle", type=Path, help="bundle (or bundles dir); default: train one")
    parser.add_argument("--train-args", default="", help="extra `coldbridge train` flags")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also add {direction: results} to this JSON file (coldbridge evaluate "
        "--warmup-json plots it)",
    )
    args = parser.parse_args(argv)
    dataset = load_cdrib(args.cdrib, args.source, args.target)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = (
            resolve_bundle_dir(args.bundle)
            if args.bundle
            else train(args.cdrib, args.source, args.target, Path(tmp), args.train_args.split())
        )
        results = measure(bundle, dataset)
    title = (
        f"{args.source} -> {args.target}: {len(dataset.test)} test lines; metrics "
        "line-averaged (sampled: 999 negatives; full: all target items)"
    )
    print(format_table(results, title))
    if args.json is not None:
        import json

        merged = json.loads(args.json.read_text(encoding="utf-8")) if args.json.exists() else {}
        merged[f"{args.source} -> {args.target}"] = results  # one file holds both directions
        args.json.write_text(json.dumps(merged, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
