"""Training configuration: every hyperparameter in one dataclass, plus ``seed``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`coldbridge_trainer.train.fit`.

    Attributes
    ----------
    dim : int
        Embedding dimension of both domains' matrix factorisation.
    epochs : int
        Epochs of each domain's MF.
    lr : float
        Adam learning rate of the MF models.
    weight_decay : float
        L2 penalty on the embeddings and biases of each MF batch.
    batch_size : int
        MF mini-batch size (interactions).
    negatives : int
        Sampled negative items per positive (BPR, implicit feedback).
    bridge_hidden : tuple of int
        Hidden layer sizes of the EMCDR bridge MLP (empty = linear bridge).
    bridge_input : str
        ``"encoder"``: source user embeddings (stored in the bundle and fed to the bridge)
        are the encoder's output over each user's history, so stored and history-based
        serving agree; ``"mf"``: the source MF user embeddings.
    bridge_epochs : int
        Maximum bridge epochs (early stopping on the valid cold users).
    bridge_lr : float
        Adam learning rate of the bridge.
    bridge_weight_decay : float
        Adam weight decay of the bridge.
    bridge_batch_size : int
        Overlapping users per bridge batch.
    bridge_mse_weight : float
        Weight of the EMCDR mapping loss ``||bridge(s_u) - t_u||^2``.
    bridge_bpr_weight : float
        Weight of the task-oriented BPR loss on the overlapping users' target items.
    bridge_negatives : int
        Negatives per positive in the bridge BPR term.
    patience : int
        Bridge epochs without valid improvement before stopping.
    select_metric : str
        Valid metric (sampled protocol, line-averaged) used for early stopping.
    encoder_ridge : float
        Ridge penalty of the closed-form source encoder.
    encoder_max_history : int
        Most recent source items used by the encoder.
    ks : tuple of int
        Cut-offs of HR@k / NDCG@k.
    eval_negatives : int
        Sampled negatives per held-out line.
    eval_seed : int
        Seed of the sampled candidate lists.
    history : bool
        Fit and bundle the history part: a target item-to-item model (EASE) and the weight
        of a user's streamed target events against the transferred scores, per number of
        events, fitted on the valid cold users (``coldbridge_trainer.history``).
    history_lambda : float
        EASE L2 penalty of the history part's item-to-item model.
    history_k : int
        Strongest positive EASE weights kept into each target item (bundle size ``N_t * k``).
    seed : int
        Seed of initialisation and sampling; the same seed gives the same metrics.
    threads : int
        ``torch.set_num_threads``.
    progress : bool
        Show tqdm progress bars.
    """

    dim: int = 32
    epochs: int = 20
    lr: float = 0.01
    weight_decay: float = 1e-4
    batch_size: int = 2048
    negatives: int = 1
    bridge_hidden: tuple[int, ...] = (128,)
    bridge_input: str = "encoder"
    bridge_epochs: int = 60
    bridge_lr: float = 0.002
    bridge_weight_decay: float = 0.0
    bridge_batch_size: int = 128
    bridge_mse_weight: float = 1.0
    bridge_bpr_weight: float = 1.0
    bridge_negatives: int = 8
    patience: int = 8
    select_metric: str = "MRR"
    encoder_ridge: float = 1.0
    encoder_max_history: int = 256
    ks: tuple[int, ...] = (1, 5, 10)
    eval_negatives: int = 999
    eval_seed: int = 2022
    history: bool = True
    history_lambda: float = 200.0
    history_k: int = 64
    seed: int = 0
    threads: int = 2
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {sorted(unknown)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**fixed)
