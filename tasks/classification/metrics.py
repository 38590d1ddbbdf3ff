"""Top-k accuracy for mmengine's evaluator."""

from __future__ import annotations

from typing import Optional, Sequence, Union

from mmengine.evaluator import BaseMetric

from .registry import METRICS


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Percentage of samples whose label is among the top-k scores; reports
    ``accuracy/top1`` (and ``accuracy/top5`` with ``topk=(1, 5)``)."""

    default_prefix = 'accuracy'

    def __init__(
        self,
        topk: Union[int, Sequence[int]] = (1,),
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk,) if isinstance(topk, int) else tuple(topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            score, gt = sample['pred_score'], sample['gt_label']
            k_max = min(max(self.topk), score.numel())
            top = score.topk(k_max).indices.cpu()
            self.results.append(
                {k: bool((top[:k] == gt.cpu()).any()) for k in self.topk}
            )

    def compute_metrics(self, results: list) -> dict:
        n = max(len(results), 1)
        return {
            f'top{k}': 100.0 * sum(r[k] for r in results) / n
            for k in self.topk
        }
