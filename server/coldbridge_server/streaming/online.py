"""ColdStartEmbeddings: per-user target embeddings learned online with River, anchored to a prior.

The server's online learner (docs/streaming.md). It is a River ranker: constructor parameters
are stored verbatim, state is a ``defaultdict`` keyed by user id as in ``reco.FunkMF``, and
updates go through River's optimizers and losses.
"""

from __future__ import annotations

import collections
import copy
import functools
import typing
import zlib

import numpy as np
from river import optim, reco

__all__ = ["ColdStartEmbeddings"]

_MASK64 = (1 << 64) - 1


class ColdStartEmbeddings(reco.base.Ranker):
    """Online user embeddings over fixed item embeddings, regularised towards a prior.

    The model equation is

    $$\\hat{y}(u, i) = \\langle \\mathbf{p}_u + \\delta_u, \\mathbf{v}_i \\rangle + b_i$$

    where the item embeddings $\\mathbf{v}_i$ and biases $b_i$ are fixed (exported by the
    trainer), $\\mathbf{p}_u$ is the user's prior (the transferred embedding, set in
    :attr:`u_priors`; zeros if unset) and $\\delta_u$ is the residual learned
    online. Because L2 regularisation acts on the residual, it pulls the user vector towards
    the prior, not towards zero. Each user is a linear model whose features are the item's
    embedding, so one update costs ``O((1 + n_negatives) * d)``.

    A boolean ``y`` is implicit feedback: the item is a positive (``y=True``) or negative
    (``y=False``) for the logistic loss, and ``n_negatives`` uniformly sampled other items are
    added as negatives. Any other number is an explicit rating fitted with the squared loss.
    Negatives are drawn from a SplitMix64 sequence keyed by ``(seed, user, item, user's update
    count)``, so replaying the same events in the same order reproduces every weight exactly.

    Parameters
    ----------
    item_embeddings
        ``[n_items, d]`` item vectors; items are their row indices. Never modified.
    item_bias
        ``[n_items]`` item biases (default zeros).
    optimizer
        River optimizer of the residuals (default ``optim.SGD(0.05)``). Exact replay from a
        snapshot of the residuals needs a per-weight stateless optimizer such as SGD.
    implicit_loss
        Loss of implicit feedback (default ``optim.losses.Log()``).
    explicit_loss
        Loss of explicit ratings (default ``optim.losses.Squared()``).
    l2
        Strength of the pull of the user vector towards its prior.
    n_negatives
        Sampled negatives per implicit positive.
    release_after
        After this many updates of a user the prior anchor is released (``l2`` no longer
        applies to them); ``None`` never releases it.
    clip_gradient
        Clips the absolute value of each loss gradient.
    seed
        Random number generation seed (negative sampling).

    Attributes
    ----------
    u_priors : dict
        User id -> prior vector ``[d]``; users without an entry have a zero prior.
    u_deltas : collections.defaultdict
        User id -> learned residual ``[d]`` (float64), initialised to zeros.
    u_updates : collections.Counter
        User id -> number of :meth:`learn_one` calls.

    Examples
    --------
    >>> import numpy as np
    >>> from river import optim

    >>> items = ["Superman", "Terminator", "Star Wars", "Notting Hill", "Love Actually"]
    >>> vectors = np.array([[1., 0.], [.9, .1], [.8, .2], [0., 1.], [.1, .9]])
    >>> model = ColdStartEmbeddings(vectors, optimizer=optim.SGD(1.0), n_negatives=1, seed=1)

    Alice's transferred embedding (the prior) says she likes romance; Bob is new everywhere:

    >>> model.u_priors["Alice"] = np.array([0., 1.])
    >>> [items[i] for i in model.rank("Alice", set(range(5)))][:2]
    ['Notting Hill', 'Love Actually']

    >>> dataset = (
    ...     ("Alice", "Superman", True),
    ...     ("Alice", "Terminator", True),
    ...     ("Alice", "Superman", True),
    ...     ("Bob", "Notting Hill", True),
    ... )
    >>> for user, item, y in dataset:
    ...     model.learn_one(user, items.index(item), y)

    >>> round(model.predict_one("Alice", items.index("Star Wars")), 4)
    0.3809
    >>> [items[i] for i in model.rank("Alice", set(range(5)))]
    ['Superman', 'Terminator', 'Star Wars', 'Love Actually', 'Notting Hill']
    >>> [items[i] for i in model.rank("Bob", set(range(5)))][:2]
    ['Notting Hill', 'Love Actually']

    """

    def __init__(
        self,
        item_embeddings: np.ndarray,
        item_bias: np.ndarray | None = None,
        optimizer: optim.base.Optimizer | None = None,
        implicit_loss: optim.losses.Loss | None = None,
        explicit_loss: optim.losses.Loss | None = None,
        l2: float = 0.0,
        n_negatives: int = 4,
        release_after: int | None = None,
        clip_gradient: float = 1e12,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.item_embeddings = item_embeddings
        self.item_bias = item_bias
        self.optimizer = optimizer
        self.implicit_loss = implicit_loss
        self.explicit_loss = explicit_loss
        self.l2 = l2
        self.n_negatives = n_negatives
        self.release_after = release_after
        self.clip_gradient = clip_gradient
        self._items = np.asarray(item_embeddings, dtype=np.float64)
        n_items, dim = self._items.shape
        bias = np.zeros(n_items) if item_bias is None else item_bias
        self._bias = np.asarray(bias, dtype=np.float64)
        self._optimizer = optim.SGD(0.05) if optimizer is None else copy.deepcopy(optimizer)
        self._implicit = optim.losses.Log() if implicit_loss is None else implicit_loss
        self._explicit = optim.losses.Squared() if explicit_loss is None else explicit_loss
        zeros = functools.partial(optim.initializers.Zeros(), shape=dim)
        self.u_priors: dict[typing.Hashable, np.ndarray] = {}
        self.u_deltas: collections.defaultdict[typing.Hashable, np.ndarray] = (
            collections.defaultdict(zeros)
        )
        self.u_updates: collections.Counter[typing.Hashable] = collections.Counter()

    @property
    def _mutable_attributes(self) -> set[str]:
        return {"l2", "n_negatives", "release_after", "clip_gradient"}

    def user_vector(self, user: typing.Hashable) -> np.ndarray:
        """The user's current vector ``prior + residual`` (a new float64 array)."""
        prior = self.u_priors.get(user)
        delta = self.u_deltas.get(user)
        vector = np.zeros(self._items.shape[1]) if prior is None else np.array(prior, np.float64)
        return vector if delta is None else vector + delta

    def predict_one(  # type: ignore[override]  # River's Reward is numbers.Number
        self, user: typing.Hashable, item: typing.Hashable, x: dict[str, typing.Any] | None = None
    ) -> float:
        row = typing.cast(int, item)
        return float(self._items[row] @ self.user_vector(user) + self._bias[row])

    def learn_one(
        self,
        user: typing.Hashable,
        item: typing.Hashable,
        y: typing.Any,
        x: dict[str, typing.Any] | None = None,
    ) -> None:
        row = typing.cast(int, item)
        if isinstance(y, (bool, np.bool_)):
            rows = np.concatenate(([row], self._negatives(user, row)))
            y_true = np.zeros(len(rows))
            y_true[0] = float(y)
            loss = self._implicit
        else:
            rows, y_true, loss = np.array([row]), np.array([float(y)]), self._explicit
        vectors = self._items[rows]
        # an elementwise product summed per row, not ``@``: learn_many computes the same
        # expression for many users at once and must agree bit for bit
        y_pred = (vectors * self.user_vector(user)).sum(axis=1) + self._bias[rows]
        clip = self.clip_gradient
        if len(rows) == 1:  # River's scalar loss path is much cheaper than its array path
            g = loss.gradient(float(y_true[0]), float(y_pred[0]))
            gradient = min(max(g, -clip), clip) * vectors[0]
        else:
            g_loss = np.minimum(np.maximum(loss.gradient(y_true, y_pred), -clip), clip)
            gradient = g_loss @ vectors
        if self.release_after is None or self.u_updates[user] < self.release_after:
            gradient = gradient + self.l2 * self.u_deltas[user]
        self.u_deltas[user] = typing.cast(
            np.ndarray, self._optimizer.step(self.u_deltas[user], gradient)
        )
        self.u_updates[user] += 1

    @property
    def can_learn_many(self) -> bool:
        """Whether :meth:`learn_many` takes its vectorised path (no negative sampling, a
        constant learning rate, an ``optim.SGD`` optimizer); else it loops :meth:`learn_one`."""
        return (
            self.n_negatives == 0
            and type(self._optimizer) is optim.SGD
            and type(self._optimizer.lr) is optim.schedulers.Constant
        )

    def learn_many(
        self,
        users: typing.Sequence[typing.Hashable],
        items: typing.Sequence[int],
        ys: typing.Sequence[typing.Any],
        capture: typing.Collection[int] = (),
    ) -> dict[int, np.ndarray]:
        """Learn from the events ``(users[j], items[j], ys[j])`` as :meth:`learn_one` would,
        one after the other, and return the user vector right before event ``j`` for each
        ``j`` in ``capture`` (float64, ``prior + residual``).

        Users never interact (item embeddings are fixed), so only each user's own order
        matters: the events are applied in *waves*, the k-th event of every user in one
        vectorised step. Every number is computed by the same elementwise expressions as
        :meth:`learn_one` (the loss gradient by the same scalar call), so the weights equal
        the sequential ones bit for bit, whatever the grouping; a test holds it to that.

        Examples
        --------
        >>> import numpy as np
        >>> items = np.array([[1., 0.], [0., 1.], [.5, .5]])
        >>> a = ColdStartEmbeddings(items, n_negatives=0)
        >>> b = ColdStartEmbeddings(items, n_negatives=0)
        >>> events = [("ann", 0, True), ("bob", 1, True), ("ann", 2, 4.0), ("ann", 1, False)]
        >>> for user, item, y in events:
        ...     a.learn_one(user, item, y)
        >>> before = b.learn_many(*zip(*events), capture=[3])
        >>> all((a.u_deltas[u] == b.u_deltas[u]).all() for u in ("ann", "bob"))
        True
        >>> before[3].round(4).tolist()
        [0.2244, 0.1994]
        """
        if not self.can_learn_many:
            before: dict[int, np.ndarray] = {}
            for j, (user, item, y) in enumerate(zip(users, items, ys, strict=True)):
                if j in capture:
                    before[j] = self.user_vector(user)
                self.learn_one(user, item, y)
            return before
        waves: list[list[int]] = []
        seen: collections.Counter[typing.Hashable] = collections.Counter()
        for j, user in enumerate(users):  # event j goes to wave k = its user's k-th event
            k = seen[user]
            seen[user] = k + 1
            if k == len(waves):
                waves.append([])
            waves[k].append(j)
        captured: dict[int, np.ndarray] = {}
        for wave in waves:
            self._learn_wave(
                [users[j] for j in wave],
                [items[j] for j in wave],
                [ys[j] for j in wave],
                wave,
                capture,
                captured,
            )
        return captured

    def _learn_wave(
        self,
        users: list[typing.Hashable],
        items: list[int],
        ys: list[typing.Any],
        wave: list[int],
        capture: typing.Collection[int],
        captured: dict[int, np.ndarray],
    ) -> None:
        """One event per user, all users distinct: learn_one's single-row path, vectorised."""
        dim = self._items.shape[1]
        deltas, priors = self.u_deltas, self.u_priors
        delta = np.stack([deltas[u] for u in users])  # the defaultdict creates missing rows
        prior = np.zeros((len(users), dim))
        for row, user in enumerate(users):
            p = priors.get(user)
            if p is not None:
                prior[row] = p
        vectors = self._items[items]
        current = prior + delta
        if capture:
            for row, j in enumerate(wave):
                if j in capture:
                    captured[j] = current[row].copy()
        y_pred = ((vectors * current).sum(axis=1) + self._bias[items]).tolist()
        clip, implicit, explicit = self.clip_gradient, self._implicit, self._explicit
        g = np.array(
            [
                min(
                    max(
                        implicit.gradient(float(y), p)
                        if isinstance(y, (bool, np.bool_))
                        else explicit.gradient(float(y), p),
                        -clip,
                    ),
                    clip,
                )
                for y, p in zip(ys, y_pred, strict=True)
            ]
        )
        gradient = g[:, None] * vectors
        updates = self.u_updates
        release = self.release_after
        anchored = [row for row, u in enumerate(users) if release is None or updates[u] < release]
        if anchored:
            gradient[anchored] = gradient[anchored] + self.l2 * delta[anchored]
        delta -= self._optimizer.learning_rate * gradient
        self._optimizer.n_iterations += len(users)
        for row, user in enumerate(users):
            deltas[user] = delta[row].copy()  # a view would keep the whole wave alive
            updates[user] += 1

    def _negatives(self, user: typing.Hashable, item: int) -> np.ndarray:
        n_items = len(self._items)
        if self.n_negatives == 0 or n_items < 2:
            return np.zeros(0, dtype=np.int64)
        key = zlib.crc32(str(user).encode("utf-8"))
        state = _splitmix64(((self.seed or 0) << 32) ^ key ^ (item << 20) ^ self.u_updates[user])
        drawn = []
        for _ in range(self.n_negatives):  # a counter-based generator: cheap to seed per event
            state = _splitmix64(state)
            drawn.append(state % (n_items - 1))
        negatives = np.array(drawn, dtype=np.int64)
        return negatives + (negatives >= item)  # skip the positive itself


def _splitmix64(x: int) -> int:
    """One step of SplitMix64 (Steele et al. 2014): a well-mixed 64-bit hash of ``x``."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)
