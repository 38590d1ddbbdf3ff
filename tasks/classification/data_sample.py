"""The data sample that travels with each image: labels plus metainfo
(``sample_idx``)."""

from __future__ import annotations

import torch
from mmengine.structures import BaseDataElement


class ClsDataSample(BaseDataElement):
    """``gt_label`` / ``pred_label`` are 0-d long tensors, ``pred_score`` the
    softmax vector.

    The dataset index is metainfo:
        ``ClsDataSample(metainfo=dict(sample_idx=3)).sample_idx``.
    """

    @property
    def gt_label(self) -> torch.Tensor:
        return self._gt_label

    @gt_label.setter
    def gt_label(self, value) -> None:
        self.set_field(
            torch.as_tensor(value, dtype=torch.long),
            '_gt_label',
            dtype=torch.Tensor,
        )

    @gt_label.deleter
    def gt_label(self) -> None:
        del self._gt_label

    @property
    def pred_label(self) -> torch.Tensor:
        return self._pred_label

    @pred_label.setter
    def pred_label(self, value) -> None:
        self.set_field(
            torch.as_tensor(value, dtype=torch.long),
            '_pred_label',
            dtype=torch.Tensor,
        )

    @pred_label.deleter
    def pred_label(self) -> None:
        del self._pred_label

    @property
    def pred_score(self) -> torch.Tensor:
        return self._pred_score

    @pred_score.setter
    def pred_score(self, value: torch.Tensor) -> None:
        self.set_field(value, '_pred_score', dtype=torch.Tensor)

    @pred_score.deleter
    def pred_score(self) -> None:
        del self._pred_score
