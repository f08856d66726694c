"""Cold-start ranking metrics, evaluation protocols and baseline scorers.

Protocols (``shared/data/cdrib/README.md``)
------------------------------------------
sampled
    Each held-out line ranks its positive against ``n_negatives`` (999) distinct
    negatives drawn with a fixed seed from the target training items, never the
    positive nor any of the user's held-out (valid + test) items. The candidate lists
    are hashed (sha256) so runs can be compared.
full
    The positive is ranked against every target item except the user's other held-out
    items.

Ties are broken at random *in expectation*: with ``g`` competitors scoring strictly
higher and ``e`` scoring equal, the rank is uniform over ``g+1 .. g+e+1`` and every
metric is its exact expectation under that distribution. Metrics are averaged over
lines and over users (mean of each user's line mean).

A scorer maps a list of user ids to a ``[n_users, n_target_items]`` score matrix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from coldbridge_trainer.data import CrossDomainDataset, HeldOut
from coldbridge_trainer.results import Metrics, ProtocolMetrics, ScorerResult, SplitResult

__all__ = [
    "EvalSplit",
    "Scorer",
    "cooccurrence_scorer",
    "evaluate_scorers",
    "format_table",
    "line_metrics",
    "make_split",
    "popularity_scorer",
    "random_scorer",
    "rank_metrics",
    "sample_candidates",
    "score_split",
]

Scorer = Callable[[list[str]], np.ndarray]
"""User ids -> float scores ``[n_users, n_target_items]``."""

DEFAULT_KS = (1, 5, 10)


def _prefix(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums ``H[r] = sum_{j<=r} 1/j`` and ``C[r] = sum_{j<=r} 1/log2(j+1)``."""
    r = np.arange(1, n + 1, dtype=np.float64)
    zero = np.zeros(1)
    harmonic = np.concatenate([zero, np.cumsum(1 / r)])
    return harmonic, np.concatenate([zero, np.cumsum(1 / np.log2(r + 1))])


def rank_metrics(
    greater: np.ndarray, equal: np.ndarray, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """Exact expected per-line metrics when ties are broken uniformly at random.

    Parameters
    ----------
    greater : numpy.ndarray
        int ``[n]``: competitors scoring strictly higher than the positive.
    equal : numpy.ndarray
        int ``[n]``: competitors scoring exactly the same.
    ks : sequence of int
        Cut-offs for ``HR@k`` and (k > 1) ``NDCG@k``.

    Returns
    -------
    dict
        ``"HR@k"``, ``"NDCG@k"``, ``"MRR"`` -> float64 ``[n]``.

    Examples
    --------
    >>> m = rank_metrics(np.array([0, 1]), np.array([0, 1]), ks=(1, 2))
    >>> [float(x) for x in m["HR@1"]], [float(x) for x in m["MRR"]]
    ([1.0, 0.0], [1.0, 0.41666666666666663])
    """
    g, e = np.asarray(greater, np.int64), np.asarray(equal, np.int64)
    n = int((g + e).max(initial=0)) + 2
    harmonic, gain = _prefix(max(n, max(ks) + 1))
    width = (e + 1).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"HR@{k}"] = np.clip(k - g, 0, e + 1) / width
    for k in ks:
        if k > 1:
            top = np.clip(k, g, g + e + 1)
            out[f"NDCG@{k}"] = (gain[top] - gain[g]) / width
    out["MRR"] = (harmonic[g + e + 1] - harmonic[g]) / width
    return out


@dataclass(frozen=True)
class EvalSplit:
    """One held-out split prepared for both protocols.

    Attributes
    ----------
    users : list of str
        Distinct users of the split (rows of the score matrix).
    line_user : numpy.ndarray
        int64 ``[n_lines]`` row in ``users`` of each line.
    positives : numpy.ndarray
        int64 ``[n_lines]`` positive target item of each line.
    candidates : numpy.ndarray
        int64 ``[n_lines, 1 + n_negatives]``: positive first, then the sampled negatives.
    held_out : list of numpy.ndarray
        Per user in ``users``: all held-out target items (valid + test).
    digest : str
        sha256 of ``candidates`` (int64, C order).
    """

    users: list[str]
    line_user: np.ndarray
    positives: np.ndarray
    candidates: np.ndarray
    held_out: list[np.ndarray]
    digest: str


def sample_candidates(
    positives: np.ndarray, exclude: list[np.ndarray], pool: np.ndarray, n_negatives: int, seed: int
) -> np.ndarray:
    """Positive first, then ``n_negatives`` distinct items of ``pool`` not in ``exclude[line]``.

    Raises
    ------
    ValueError
        If a line has fewer than ``n_negatives`` eligible items.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((len(positives), n_negatives + 1), dtype=np.int64)
    for line, (pos, excl) in enumerate(zip(positives.tolist(), exclude, strict=True)):
        allowed = pool[~np.isin(pool, excl)]
        if len(allowed) < n_negatives:
            raise ValueError(
                f"line {line}: only {len(allowed)} eligible negatives (< {n_negatives})"
            )
        out[line, 0] = pos
        out[line, 1:] = rng.choice(allowed, size=n_negatives, replace=False)
    return out


def make_split(
    dataset: CrossDomainDataset,
    split: HeldOut,
    n_negatives: int = 999,
    seed: int = 2022,
    exclude: str = "held_out",
) -> EvalSplit:
    """Prepare ``split`` (``dataset.valid`` or ``dataset.test``) for evaluation.

    ``n_negatives`` is capped at the number of eligible training items (small data).

    ``exclude`` names the items that are never negatives (sampled) nor competitors (full):
    ``"held_out"`` (default) every held-out item of the user (valid + test);
    ``"split"`` only the user's items of ``split`` itself. Model selection on valid uses
    ``"split"`` so that its candidate lists do not depend on ``test`` at all.
    """
    if exclude == "held_out":
        held = dataset.held_out_items()
    elif exclude == "split":
        held = {}
        for u, i in zip(split.user_ids, split.items.tolist(), strict=True):
            held.setdefault(u, set()).add(i)
    else:
        raise ValueError(f"exclude must be 'held_out' or 'split', got {exclude!r}")
    users = list(dict.fromkeys(split.user_ids))
    row = {u: i for i, u in enumerate(users)}
    held_arrays = [np.asarray(sorted(held[u]), dtype=np.int64) for u in users]
    line_user = np.fromiter((row[u] for u in split.user_ids), np.int64, len(split))
    pool = np.unique(dataset.target.items)
    excl = [held_arrays[i] for i in line_user.tolist()]
    n_neg = min(n_negatives, min((len(pool) - len(x) for x in excl), default=n_negatives))
    cands = sample_candidates(split.items, excl, pool, n_neg, seed)
    digest = hashlib.sha256(np.ascontiguousarray(cands).tobytes()).hexdigest()
    return EvalSplit(users, line_user, split.items.copy(), cands, held_arrays, digest)


def _sampled_counts(scores: np.ndarray, ev: EvalSplit) -> tuple[np.ndarray, np.ndarray]:
    cand = scores[ev.line_user[:, None], ev.candidates]
    pos, neg = cand[:, :1], cand[:, 1:]
    return (neg > pos).sum(1), (neg == pos).sum(1)


def _full_counts(scores: np.ndarray, ev: EvalSplit) -> tuple[np.ndarray, np.ndarray]:
    g = np.zeros(len(ev.positives), np.int64)
    e = np.zeros(len(ev.positives), np.int64)
    for u in range(len(ev.users)):
        lines = np.flatnonzero(ev.line_user == u)
        row = scores[u].astype(np.float64)
        pos = row[ev.positives[lines]][:, None]
        row[ev.held_out[u]] = -np.inf
        g[lines], e[lines] = (row > pos).sum(1), (row == pos).sum(1)
    return g, e


def _average(
    per_line: dict[str, np.ndarray], line_user: np.ndarray, n_users: int
) -> ProtocolMetrics:
    counts = np.bincount(line_user, minlength=n_users)
    seen = counts > 0
    user = {
        k: float(np.mean(np.bincount(line_user, v, n_users)[seen] / counts[seen]))
        for k, v in per_line.items()
    }
    return ProtocolMetrics(
        Metrics({k: float(v.mean()) for k, v in per_line.items()}), Metrics(user)
    )


_COUNTERS = {"sampled": _sampled_counts, "full": _full_counts}


def line_metrics(
    scores: np.ndarray, ev: EvalSplit, protocol: str, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """Per-line metrics ``{metric: float64 [n_lines]}`` of one protocol (``sampled``/``full``)."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] != len(ev.users):
        raise ValueError(f"scores shape {scores.shape} does not match {len(ev.users)} users")
    return rank_metrics(*_COUNTERS[protocol](scores, ev), ks)


def score_split(
    scores: np.ndarray,
    ev: EvalSplit,
    ks: Sequence[int] = DEFAULT_KS,
    protocols: Sequence[str] = ("sampled", "full"),
) -> ScorerResult:
    """Metrics of one score matrix (rows = ``ev.users``) under the given protocols.

    Returns
    -------
    ScorerResult
        ``result.sampled.line["HR@10"]``; ``to_dict()`` is
        ``{"sampled"|"full": {"line"|"user": {metric: value}}}``.
    """
    n = len(ev.users)
    return ScorerResult(
        {p: _average(line_metrics(scores, ev, p, ks), ev.line_user, n) for p in protocols}
    )


def evaluate_scorers(
    scorers: dict[str, Scorer], ev: EvalSplit, ks: Sequence[int] = DEFAULT_KS
) -> SplitResult:
    """Evaluate several scorers on one prepared split.

    Returns
    -------
    SplitResult
        Split sizes, the candidates' digest and ``scorers: {name: score_split(...)}``.
    """
    results = {name: score_split(fn(ev.users), ev, ks) for name, fn in scorers.items()}
    return SplitResult(
        len(ev.positives), len(ev.users), int(ev.candidates.shape[1]), ev.digest, results
    )


def popularity_scorer(dataset: CrossDomainDataset) -> Scorer:
    """Target training interaction counts (ties broken at random in expectation)."""
    pop = dataset.target.popularity().astype(np.float64)
    return lambda users: np.broadcast_to(pop, (len(users), len(pop)))


def random_scorer(dataset: CrossDomainDataset) -> Scorer:
    """Constant scores: with expected tie-breaking this is the exact random ranking."""
    n = dataset.target.n_items
    return lambda users: np.zeros((len(users), n))


def _csr(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((cols, rows))
    return cols[order], np.searchsorted(rows[order], np.arange(n_rows + 1))


def cooccurrence_scorer(dataset: CrossDomainDataset) -> Scorer:
    """Training-free transfer baseline.

    A target item scores the number of overlapping users (in both training sets) who
    share at least one source item with the cold user and interacted with the item.
    """
    src, tgt = dataset.source, dataset.target
    overlap = np.array([u in tgt.user_index for u in src.user_ids], dtype=bool)
    keep = overlap[src.users]
    item_users, item_ptr = _csr(src.items[keep], src.users[keep], src.n_items)
    user_items, user_ptr = _csr(src.users, src.items, src.n_users)
    to_tgt = np.array([tgt.user_index.get(u, -1) for u in src.user_ids], dtype=np.int64)
    pairs = np.unique(np.stack([tgt.users, tgt.items], 1), axis=0)
    t_items, t_ptr = _csr(pairs[:, 0], pairs[:, 1], tgt.n_users)

    def score(users: list[str]) -> np.ndarray:
        out = np.zeros((len(users), tgt.n_items))
        for row, uid in enumerate(users):
            s = src.user_index[uid]
            items = user_items[user_ptr[s] : user_ptr[s + 1]]
            peers = np.unique(
                np.concatenate([item_users[item_ptr[i] : item_ptr[i + 1]] for i in items])
            )
            peers = to_tgt[peers[peers != s]]
            rows = [t_items[t_ptr[p] : t_ptr[p + 1]] for p in peers]
            got = np.concatenate(rows or [np.zeros(0, np.int64)])
            out[row] = np.bincount(got, minlength=tgt.n_items)
        return out

    return score


def format_table(results: SplitResult, title: str = "") -> str:
    """Readable table: one block per protocol and averaging, one row per scorer."""
    scorers = results.scorers
    metrics = list(next(iter(scorers.values())).sampled.line)
    width = max(len(n) for n in scorers) + 2
    lines = [title] if title else []
    lines.append(
        f"lines={results.n_lines} users={results.n_users} "
        f"candidates={results.n_candidates} sha256={results.candidates_sha256[:16]}"
    )
    for proto in ("sampled", "full"):
        for avg in ("line", "user"):
            lines.append(f"[{proto}, {avg}-averaged]")
            lines.append("".ljust(width) + "".join(m.rjust(9) for m in metrics))
            for name, res in scorers.items():
                vals = getattr(res.protocols[proto], avg)
                lines.append(name.ljust(width) + "".join(f"{vals[m]:9.4f}" for m in metrics))
    return "\n".join(lines)
