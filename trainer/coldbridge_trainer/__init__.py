"""coldbridge offline trainer: data loading, synthetic data, EMCDR training, evaluation.

Importing the package is light (numpy only); :mod:`coldbridge_trainer.train` and
:mod:`coldbridge_trainer.models` import torch.
"""

from __future__ import annotations

from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import (
    CrossDomainDataset,
    DomainData,
    HeldOut,
    load_cdrib,
    load_dataset,
)
from coldbridge_trainer.synth import SynthConfig, write_dataset

__all__ = [
    "CrossDomainDataset",
    "DomainData",
    "HeldOut",
    "SynthConfig",
    "TrainConfig",
    "load_cdrib",
    "load_dataset",
    "write_dataset",
]
