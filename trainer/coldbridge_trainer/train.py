"""Offline training: MF in both domains, source encoder, EMCDR bridge, evaluation, export.

Pipeline of :func:`fit`:

1. matrix factorisation of the source and the target training interactions;
2. closed-form ridge source encoder reproducing the source MF user embeddings from the
   users' item bags (serving path for users known only by their history);
3. bridge MLP trained on the overlapping users (in both training sets): EMCDR mapping
   loss ``||bridge(s_u) - t_u||^2`` plus a task-oriented BPR loss on their target items,
   early-stopped on the valid cold users (sampled protocol);
4. evaluation of the cold users of ``valid`` and ``test`` next to popularity, item
   co-occurrence and random baselines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from coldbridge_bundle import BundleContent, Sides, StrategyContent, write
from coldbridge_plugins import pad_histories
from tqdm.auto import tqdm

from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import CrossDomainDataset, DomainData
from coldbridge_trainer.evaluate import (
    EvalSplit,
    Scorer,
    cooccurrence_scorer,
    evaluate_scorers,
    make_split,
    popularity_scorer,
    random_scorer,
    score_split,
)
from coldbridge_trainer.export import BaseWeights
from coldbridge_trainer.history import HistoryFit, fit_history
from coldbridge_trainer.models import (
    Bridge,
    MatrixFactorization,
    SourceEncoder,
    TargetScorer,
    bpr_loss,
    fit_encoder_ridge,
    mean_pool,
)
from coldbridge_trainer.results import SplitResult, TrainMetrics

__all__ = [
    "TrainResult",
    "export_result",
    "fit",
    "fit_bridge",
    "fit_mf",
    "seed_everything",
    "train_and_export",
]


@dataclass
class TrainResult:
    """Trained weights (numpy, bundle format), the torch bridge and the metrics."""

    config: TrainConfig
    dataset: CrossDomainDataset
    source_user_emb: np.ndarray
    source_item_emb: np.ndarray
    encoder_weight: np.ndarray
    encoder_bias: np.ndarray
    bridge: Bridge
    target_user_emb: np.ndarray
    target_item_emb: np.ndarray
    target_item_bias: np.ndarray
    metrics: TrainMetrics | None = None
    """What :func:`fit` measured (``None`` until it has)."""
    strategies: dict[str, Any] = field(default_factory=dict)
    """Fitted strategies (:class:`coldbridge_trainer.strategies.FittedStrategy` by name)."""
    default_strategy: str = "emcdr"
    history: HistoryFit | None = None
    """The fitted history part (:meth:`history_part` fits it on first use)."""

    def modules(self) -> tuple[SourceEncoder, Bridge, TargetScorer]:
        """Torch modules matching the exported ONNX graphs."""
        enc = SourceEncoder(self.source_item_emb, self.encoder_weight, self.encoder_bias)
        return enc, self.bridge.eval(), TargetScorer(self.target_item_emb, self.target_item_bias)

    def transfer(self, source_emb: np.ndarray) -> np.ndarray:
        """Bridge source user embeddings to the target space (float32)."""
        with torch.no_grad():
            return self.bridge(torch.as_tensor(source_emb, dtype=torch.float32)).numpy()

    def target_scores(self, target_emb: np.ndarray) -> np.ndarray:
        """``u @ V^T + b`` for target-space user embeddings."""
        return target_emb @ self.target_item_emb.T + self.target_item_bias

    def scorer(self) -> Scorer:
        """Cold-user scorer through the stored source embeddings and the bridge."""
        index = self.dataset.source.user_index
        return lambda users: self.target_scores(
            self.transfer(self.source_user_emb[[index[u] for u in users]])
        )

    def encoder_scorer(self) -> Scorer:
        """Cold-user scorer through the source encoder over the users' histories."""
        src, max_len = self.dataset.source, self.config.encoder_max_history
        hist = src.user_histories(max_len)

        def score(users: list[str]) -> np.ndarray:
            idx, mask = pad_histories([hist[src.user_index[u]] for u in users], max_len)
            enc = SourceEncoder(self.source_item_emb, self.encoder_weight, self.encoder_bias)
            with torch.no_grad():
                emb = enc(torch.from_numpy(idx), torch.from_numpy(mask)).numpy()
            return self.target_scores(self.transfer(emb))

        return score

    def weights(self) -> BaseWeights:
        """The numpy weights the bundle's base graphs and arrays are built from."""
        return BaseWeights(
            source_item_emb=self.source_item_emb,
            encoder_weight=self.encoder_weight,
            encoder_bias=self.encoder_bias,
            source_user_emb=self.source_user_emb,
            bridge_layers=self.bridge.layer_weights(),
            target_item_emb=self.target_item_emb,
            target_item_bias=self.target_item_bias,
            target_user_emb=self.target_user_emb,
            target_item_popularity=self.dataset.target.popularity(),
        )

    def history_part(self) -> HistoryFit | None:
        """The bundle's history part (``None`` when ``config.history`` is off).

        Fitted on first use against the default strategy's scores
        (:func:`coldbridge_trainer.history.fit_history`: valid cold users only), and again
        if the default strategy has changed since.
        """
        if not self.config.history:
            return None
        if self.history is None or self.history.strategy != self.default_strategy:
            self.history = fit_history(self)
        return self.history

    def bundle_content(self) -> BundleContent:
        """Everything the bundle holds: graphs, arrays, ids, strategies, history, metrics."""
        ds, weights, history = self.dataset, self.weights(), self.history_part()
        metrics = self.metrics.to_dict() if self.metrics else {}
        if history is not None:
            metrics["history_blend"] = history.config["buckets"]
        return BundleContent(
            domains=Sides(ds.source.name, ds.target.name),
            feedback=ds.feedback,
            items=Sides(ds.source.item_ids, ds.target.item_ids),
            users=Sides(ds.source.user_ids, ds.target.user_ids),
            models=weights.models(),
            arrays=weights.arrays(),
            encoder_max_history=self.config.encoder_max_history,
            strategy=self.default_strategy,
            strategies={
                name: StrategyContent(f.cls.version, f.cls.output, f.config, f.parts)
                for name, f in self.strategies.items()
            },
            source_histories=ds.source.user_histories(),
            history=history.model if history is not None else None,
            history_config=history.config if history is not None else {},
            metrics=metrics,
            config=self.config.to_dict(),
        )


def seed_everything(config: TrainConfig) -> torch.Generator:
    """Seed torch and numpy, fix the thread count, request deterministic kernels."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    return torch.Generator().manual_seed(config.seed)


def _mf_loss(
    model: MatrixFactorization,
    data: dict[str, torch.Tensor],
    batch: torch.Tensor,
    config: TrainConfig,
    explicit: bool,
    gen: torch.Generator,
) -> torch.Tensor:
    u, i = data["users"][batch], data["items"][batch]
    if explicit:
        loss = (model(u, i) - data["values"][batch]).pow(2).mean()
        return loss + config.weight_decay * model.l2(u, i).mean()
    neg = torch.randint(model.item.num_embeddings, (len(batch), config.negatives), generator=gen)
    loss = bpr_loss(model(u, i), model(u, neg))
    return loss + config.weight_decay * model.l2(u, torch.cat([i[:, None], neg], 1)).mean()


def fit_mf(
    domain: DomainData, config: TrainConfig, explicit: bool, gen: torch.Generator
) -> MatrixFactorization:
    """Train one domain's MF with Adam (BPR, or squared loss on centred values)."""
    model = MatrixFactorization(domain.n_users, domain.n_items, config.dim, gen)
    opt = torch.optim.SparseAdam(list(model.parameters()), lr=config.lr)
    values = domain.values - domain.values.mean() if explicit else domain.values
    data = {
        "users": torch.from_numpy(domain.users),
        "items": torch.from_numpy(domain.items),
        "values": torch.from_numpy(np.asarray(values, dtype=np.float32)),
    }
    bar = tqdm(range(config.epochs), desc=f"MF {domain.name}", disable=not config.progress)
    for _ in bar:
        perm, total = torch.randperm(len(domain.users), generator=gen), 0.0
        for start in range(0, len(perm), config.batch_size):
            loss = _mf_loss(
                model, data, perm[start : start + config.batch_size], config, explicit, gen
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * min(config.batch_size, len(perm) - start)
        bar.set_postfix(loss=f"{total / max(len(perm), 1):.4f}")
    return model.eval()


@dataclass
class _BridgeData:
    x: torch.Tensor
    y: torch.Tensor
    item_emb: torch.Tensor
    item_bias: torch.Tensor
    pos_items: torch.Tensor
    pos_ptr: torch.Tensor


def _bridge_data(ds: CrossDomainDataset, src_user: np.ndarray, tgt: tuple) -> _BridgeData:
    overlap = ds.overlap_users()
    s_rows = np.array([ds.source.user_index[u] for u in overlap], dtype=np.int64)
    t_rows = np.array([ds.target.user_index[u] for u in overlap], dtype=np.int64)
    remap = np.full(ds.target.n_users, -1, dtype=np.int64)
    remap[t_rows] = np.arange(len(t_rows))
    local = remap[ds.target.users]
    keep = local >= 0
    order = np.lexsort((ds.target.items[keep], local[keep]))
    ptr = np.searchsorted(local[keep][order], np.arange(len(overlap) + 1))
    t_user, t_item, t_bias = (torch.from_numpy(a) for a in tgt)
    return _BridgeData(
        torch.from_numpy(src_user[s_rows]),
        t_user[torch.from_numpy(t_rows)],
        t_item,
        t_bias,
        torch.from_numpy(ds.target.items[keep][order]),
        torch.from_numpy(ptr),
    )


def _bridge_loss(
    bridge: Bridge, d: _BridgeData, batch: torch.Tensor, config: TrainConfig, gen: torch.Generator
) -> torch.Tensor:
    out = bridge(d.x[batch])
    loss = config.bridge_mse_weight * (out - d.y[batch]).pow(2).sum(-1).mean()
    if config.bridge_bpr_weight > 0:
        start, count = d.pos_ptr[batch], d.pos_ptr[batch + 1] - d.pos_ptr[batch]
        pos = d.pos_items[start + (torch.rand(len(batch), generator=gen) * count).long()]
        neg = torch.randint(len(d.item_bias), (len(batch), config.bridge_negatives), generator=gen)
        s_pos = (out * d.item_emb[pos]).sum(-1) + d.item_bias[pos]
        s_neg = (out.unsqueeze(1) * d.item_emb[neg]).sum(-1) + d.item_bias[neg]
        loss = loss + config.bridge_bpr_weight * bpr_loss(s_pos, s_neg)
    return loss


def _valid_metric(result: TrainResult, ev: EvalSplit) -> float:
    scores = result.scorer()(ev.users)
    res = score_split(scores, ev, result.config.ks, protocols=("sampled",))
    return res.sampled.line[result.config.select_metric]


def fit_bridge(result: TrainResult, ev: EvalSplit, gen: torch.Generator) -> list[dict]:
    """Train ``result.bridge`` in place with early stopping; returns the per-epoch history."""
    tgt = (result.target_user_emb, result.target_item_emb, result.target_item_bias)
    cfg, d = result.config, _bridge_data(result.dataset, result.source_user_emb, tgt)
    opt = torch.optim.Adam(
        result.bridge.parameters(), lr=cfg.bridge_lr, weight_decay=cfg.bridge_weight_decay
    )
    best, best_state, history = -np.inf, None, []
    bar = tqdm(range(cfg.bridge_epochs), desc="bridge", disable=not cfg.progress)
    for epoch in bar:
        result.bridge.train()
        perm = torch.randperm(len(d.x), generator=gen)
        for start in range(0, len(perm), cfg.bridge_batch_size):
            loss = _bridge_loss(
                result.bridge, d, perm[start : start + cfg.bridge_batch_size], cfg, gen
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        metric = _valid_metric(result, ev)
        history.append({"epoch": epoch + 1, f"valid_{cfg.select_metric}": metric})
        bar.set_postfix(valid=f"{metric:.4f}")
        if metric > best:
            best, best_state = metric, {k: v.clone() for k, v in result.bridge.state_dict().items()}
        elif epoch + 1 - _best_epoch(history, cfg) >= cfg.patience:
            break
    if best_state is not None:
        result.bridge.load_state_dict(best_state)
    result.bridge.eval()
    return history


def _best_epoch(history: list[dict], config: TrainConfig) -> int:
    key = f"valid_{config.select_metric}"
    return max(history, key=lambda h: (h[key], -h["epoch"]))["epoch"]


def _evaluate(result: TrainResult, splits: dict[str, EvalSplit]) -> dict[str, SplitResult]:
    ds = result.dataset
    scorers = {
        "bridge": result.scorer(),
        "bridge+encoder": result.encoder_scorer(),
        "popularity": popularity_scorer(ds),
        "cooccurrence": cooccurrence_scorer(ds),
        "random": random_scorer(ds),
    }
    return {name: evaluate_scorers(scorers, ev, result.config.ks) for name, ev in splits.items()}


def fit(
    dataset: CrossDomainDataset,
    config: TrainConfig | None = None,
    valid_split: EvalSplit | None = None,
) -> TrainResult:
    """Train the full EMCDR pipeline and evaluate it on the cold users.

    Parameters
    ----------
    dataset : CrossDomainDataset
        Training data and valid/test cold-start rows.
    config : TrainConfig, optional
        Hyperparameters (defaults if omitted).
    valid_split : EvalSplit, optional
        The prepared valid cold users used for early stopping (default:
        ``make_split(dataset, dataset.valid, ..., exclude="split")``, whose candidate lists
        do not depend on ``dataset.test``).

    Returns
    -------
    TrainResult
        Weights, bridge module and ``metrics`` (``valid``/``test`` results of every
        scorer, best epoch, history, timings).
    """
    cfg = config or TrainConfig()
    if cfg.bridge_input not in ("encoder", "mf"):
        raise ValueError(f"bridge_input must be 'encoder' or 'mf', got {cfg.bridge_input!r}")
    gen, t0 = seed_everything(cfg), time.perf_counter()
    explicit = dataset.feedback == "explicit"
    src = fit_mf(dataset.source, cfg, explicit, gen)
    tgt = fit_mf(dataset.target, cfg, explicit, gen)
    (src_user, src_item, _), (tgt_user, tgt_item, tgt_bias) = src.arrays(), tgt.arrays()
    hist = dataset.source.user_histories(cfg.encoder_max_history)
    w, b = fit_encoder_ridge(src_item, hist, src_user, cfg.encoder_ridge, cfg.encoder_max_history)
    if cfg.bridge_input == "encoder":
        src_user = (mean_pool(src_item, hist, cfg.encoder_max_history) @ w + b).astype(np.float32)
    result = TrainResult(
        cfg,
        dataset,
        src_user,
        src_item,
        w,
        b,
        Bridge(cfg.dim, cfg.dim, cfg.bridge_hidden, gen),
        tgt_user,
        tgt_item,
        tgt_bias,
    )
    # Selection never reads test.txt: valid negatives exclude only the user's valid items.
    splits = {
        "valid": valid_split
        if valid_split is not None
        else make_split(dataset, dataset.valid, cfg.eval_negatives, cfg.eval_seed, exclude="split"),
        "test": make_split(dataset, dataset.test, cfg.eval_negatives, cfg.eval_seed),
    }
    t1 = time.perf_counter()
    history = fit_bridge(result, splits["valid"], gen)
    scored = _evaluate(result, splits)
    result.metrics = TrainMetrics(
        scored["valid"],
        scored["test"],
        best_epoch=_best_epoch(history, cfg),
        history=history,
        n_overlap_users=len(dataset.overlap_users()),
        seconds={"mf": round(t1 - t0, 2), "total": round(time.perf_counter() - t0, 2)},
    )
    return result


def export_result(result: TrainResult, out_dir: Path | str, version: str | None = None) -> Path:
    """Write ``result`` as a bundle ``out_dir/<version>`` and return its path."""
    return write(Path(out_dir), result.bundle_content(), version=version)


def train_and_export(
    dataset: CrossDomainDataset,
    config: TrainConfig | None,
    out_dir: Path | str,
    version: str | None = None,
) -> Path:
    """:func:`fit`, then write a bundle (with metrics and config) under ``out_dir``.

    Returns
    -------
    pathlib.Path
        The bundle directory ``out_dir/<version>``.
    """
    return export_result(fit(dataset, config), out_dir, version)
