"""The registered SAM-family methods besides SAM: the one wrapper
(``SAMOptimWrapper``) with each method's core. A method's settings are
the arguments of its core class."""

from typing import Dict

import torch
from mmengine.registry import OPTIM_WRAPPERS

from ..methods import (
    ESAM,
    GRST,
    KSAM,
    MESA,
    MSAM,
    RST,
    SAF,
    LatePhaseSAM,
    LookSAM,
    Plain,
)
from ..sam import AUSAM
from .optim_wrapper import SAMOptimWrapper


@OPTIM_WRAPPERS.register_module()
class AUSAMOptimWrapper(SAMOptimWrapper):
    """AUSAM: SAM on an ADLP-sampled subset of each mini-batch
    (``ausam_tasks.sam.AUSAM``). Hooks read its score table through the
    methods below."""

    method = AUSAM

    def score_stats(self) -> Dict[str, float]:
        """Scored fraction and statistics of the ADLP scores."""
        return self.core.table.stats()

    def sample_scores(self, sample_idx) -> torch.Tensor:
        """ADLP score of each dataset index (float64); NaN if never
        scored."""
        return self.core.table.scores(sample_idx)

    def selection_counts(self, sample_idx=None) -> torch.Tensor:
        """How many times each dataset index was trained on by the SAM
        passes (and so scored), int64; all indices when None."""
        return self.core.table.counts(sample_idx)


@OPTIM_WRAPPERS.register_module()
class KSAMOptimWrapper(SAMOptimWrapper):
    """K-SAM (``ausam_tasks.methods.ksam.KSAM``)."""

    method = KSAM


@OPTIM_WRAPPERS.register_module()
class ESAMOptimWrapper(SAMOptimWrapper):
    """ESAM (``ausam_tasks.methods.esam.ESAM``)."""

    method = ESAM


@OPTIM_WRAPPERS.register_module()
class LookSAMOptimWrapper(SAMOptimWrapper):
    """LookSAM (``ausam_tasks.methods.looksam.LookSAM``)."""

    method = LookSAM


@OPTIM_WRAPPERS.register_module()
class LatePhaseSAMOptimWrapper(SAMOptimWrapper):
    """Late-phase SAM (``ausam_tasks.methods.late_phase.LatePhaseSAM``)."""

    method = LatePhaseSAM


@OPTIM_WRAPPERS.register_module()
class RSTOptimWrapper(SAMOptimWrapper):
    """RST (``ausam_tasks.methods.rst.RST``)."""

    method = RST


@OPTIM_WRAPPERS.register_module()
class GRSTOptimWrapper(SAMOptimWrapper):
    """G-RST (``ausam_tasks.methods.grst.GRST``)."""

    method = GRST


@OPTIM_WRAPPERS.register_module()
class MSAMOptimWrapper(SAMOptimWrapper):
    """Momentum-SAM (``ausam_tasks.methods.msam.MSAM``)."""

    method = MSAM


@OPTIM_WRAPPERS.register_module()
class MESAOptimWrapper(SAMOptimWrapper):
    """MESA (``ausam_tasks.methods.mesa.MESA``); the model needs
    ``forward(..., mode='loss_and_outputs')``."""

    method = MESA


@OPTIM_WRAPPERS.register_module()
class SAFOptimWrapper(SAMOptimWrapper):
    """SAF (``ausam_tasks.methods.saf.SAF``); the model needs
    ``forward(..., mode='loss_and_outputs')``."""

    method = SAF


@OPTIM_WRAPPERS.register_module()
class PlainOptimWrapper(SAMOptimWrapper):
    """The base optimizer's one-pass step (``ausam_tasks.methods.plain``)
    through the per-sample protocol: SGD with InfoBatch's loss weights
    (``infobatch_pass='first'``)."""

    method = Plain
