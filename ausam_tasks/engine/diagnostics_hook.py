"""A hook that checks, during a run, whether AUSAM's scores carry
information (Lemma 1 and Theorem 4 of the paper); see docs/diagnostics.md."""

import contextlib
import json
import math
import os
import random
import time
from typing import Optional

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS  # root: any scope finds it

from ..diagnostics import coverage, probe_diagnostics
from ..perturb import second_pass
from ..selection import s_max_at
from .protocol import LossClosure, sample_indices

CKPT_KEY = 'selection_diagnostics'


def _setting(ow, name: str, default=None):
    """A wrapper setting, on the wrapper or on its core step."""
    for owner in (ow, getattr(ow, 'core', None)):
        if owner is not None and hasattr(owner, name):
            return getattr(owner, name)
    return default


@HOOKS.register_module()
class SelectionDiagnosticsHook(Hook):
    """Every ``interval`` epochs, on a fixed probe set of ``num_probe``
    training samples, log to the message hub and the visualizer
    (``vis_data/scalars.json``, TensorBoard) under ``diag/``:

    - ``grad_norm_mean``: mean exact per-sample gradient norm;
    - ``dlp_spearman``, ``dlp_pearson``: correlation of one SAM step's
      DLP / rho with those norms (Lemma 1), eps from the probe batch;
    - ``adlp_spearman``: correlation of the score table's ADLP with the
      norms, over the probe samples that have a score;
    - ``err_{adlp,uniform}_{w,eps}``: ||g_S - g_B|| / ||g_B|| of subsets
      of n = round(alpha P), averaged over ``num_draws`` draws (Thm. 4);
    - ``coverage_*``: selections per sample since the scoring epochs.

    Off unless listed in ``custom_hooks``. Per-sample arrays and the
    coverage histogram go to ``{log_dir}/diagnostics/epoch_{E}.json``.

    Mode: the model runs in eval mode (BatchNorm with running statistics,
    so per-sample gradients are well defined and g_B is their mean), in
    fp32, on the main process only, with ``p.grad`` and all RNG streams
    left untouched. The probe is built once: the dataset pipeline as
    configured, the data preprocessor with ``training=augment``, under a
    fixed seed, so every diagnostic sees the same inputs.

    Cost per diagnostic: 2 P single-sample forward/backward passes (at w
    and at w + eps) and O((2 R + 1) d) memory for d parameters; 14 s for
    ResNet-20 (width 16, 16x16 inputs, P = 256) on one shared CPU core.

    Args:
        interval: run after every ``interval``-th training epoch.
        num_probe: probe samples P (>= 2, at most the dataset size).
        num_draws: subset draws R per selector.
        seed: picks the probe samples, their augmentation and the draws.
        augment: run the data preprocessor's training augmentation.
        rho, alpha: override the wrapper's (needed for wrappers without
            them, e.g. plain SGD's ``OptimWrapper``).
        save_arrays: also write the per-sample JSON files.
    """

    priority = 'LOW'  # before the checkpoint hook saves the epoch

    def __init__(
        self,
        interval: int = 1,
        num_probe: int = 256,
        num_draws: int = 8,
        seed: int = 0,
        augment: bool = False,
        rho: Optional[float] = None,
        alpha: Optional[float] = None,
        save_arrays: bool = True,
    ):
        for name, value, low in (
            ('interval', interval, 1),
            ('num_probe', num_probe, 2),
            ('num_draws', num_draws, 1),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(
                    f'SelectionDiagnosticsHook: {name} must be an integer '
                    f'>= {low}, got {value!r}'
                )
        if rho is not None and rho <= 0:
            raise ValueError(
                f'SelectionDiagnosticsHook: rho must be > 0, got {rho}'
            )
        if alpha is not None and not 0.0 < alpha <= 1.0:
            raise ValueError(
                f'SelectionDiagnosticsHook: alpha must be in (0, 1], '
                f'got {alpha}'
            )
        self.interval = interval
        self.num_probe = num_probe
        self.num_draws = num_draws
        self.seed = seed
        self.augment = augment
        self.rho, self.alpha = rho, alpha
        self.save_arrays = save_arrays
        self._probe = None
        self._baseline = None  # selection counts when scoring ended
        self._baseline_epoch = None

    # --- set-up -----------------------------------------------------------
    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        if self.num_probe > len(dataset):
            raise ValueError(
                f'SelectionDiagnosticsHook: num_probe={self.num_probe} is '
                f'larger than the training dataset ({len(dataset)} samples);'
                ' lower num_probe'
            )
        ow = runner.optim_wrapper
        rho = self.rho if self.rho is not None else _setting(ow, 'rho')
        alpha = self.alpha if self.alpha is not None else _setting(ow, 'alpha')
        for name, value in (('rho', rho), ('alpha', alpha)):
            if value is None:
                raise ValueError(
                    f'SelectionDiagnosticsHook: the optimizer wrapper '
                    f'{type(ow).__name__} has no {name}; set {name}=... in '
                    'the hook config'
                )
        self._rho, self._alpha = float(rho), float(alpha)
        self._scored = callable(getattr(ow, 'sample_scores', None))
        self._counted = callable(getattr(ow, 'selection_counts', None))
        if not self._scored:
            runner.logger.warning(
                f'SelectionDiagnosticsHook: {type(ow).__name__} keeps no '
                'score table, so the ADLP correlation, ADLP draws and '
                'coverage are skipped (DLP, gradient norms and uniform '
                'draws are still logged)'
            )
        self._init_epochs = int(_setting(ow, 'init_epochs', 0) or 0)
        if (
            self._counted
            and self._baseline is None
            and runner.epoch > self._init_epochs
        ):
            # Resumed from a checkpoint saved without this hook's state.
            self._set_baseline(runner)
            runner.logger.warning(
                'SelectionDiagnosticsHook: the checkpoint holds no selection'
                ' counts from the end of the scoring epochs; coverage counts'
                f' from epoch {runner.epoch} (this resume)'
            )

    def _counts(self, runner) -> torch.Tensor:
        # All counts, padded to the dataset: asking for indices beyond a
        # growing table would grow it, and the hook must change nothing.
        counts = runner.optim_wrapper.selection_counts().to(torch.int64)
        n = len(runner.train_dataloader.dataset)
        out = torch.zeros(n, dtype=torch.int64)
        m = min(n, counts.numel())
        out[:m] = counts[:m]
        return out

    def _set_baseline(self, runner) -> None:
        self._baseline = self._counts(runner)
        self._baseline_epoch = runner.epoch

    def before_train_epoch(self, runner) -> None:
        if (
            self._counted
            and self._baseline is None
            and runner.epoch >= self._init_epochs
        ):
            self._set_baseline(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._baseline is not None:
            checkpoint[CKPT_KEY] = dict(
                baseline=self._baseline, epoch=self._baseline_epoch
            )

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(CKPT_KEY)
        if state is not None:
            self._baseline = state['baseline'].clone()
            self._baseline_epoch = int(state['epoch'])

    # --- the probe --------------------------------------------------------
    def _build_probe(self, runner, model) -> None:
        dataset = runner.train_dataloader.dataset
        g = torch.Generator().manual_seed(self.seed)
        idx = torch.randperm(len(dataset), generator=g)[: self.num_probe]
        collate = runner.train_dataloader.collate_fn
        states = (random.getstate(), np.random.get_state())
        with torch.random.fork_rng(devices=_cuda_devices(model)):
            torch.manual_seed(self.seed)
            random.seed(self.seed)
            np.random.seed(self.seed % 2**32)
            try:
                batch = collate([dataset[int(i)] for i in idx.sort().values])
                with torch.no_grad():
                    data = model.data_preprocessor(batch, self.augment)
            finally:
                random.setstate(states[0])
                np.random.set_state(states[1])
        self._probe = data
        self._probe_idx = sample_indices(data['data_samples'])

    # --- the diagnostic ---------------------------------------------------
    def after_train_epoch(self, runner) -> None:
        if (runner.epoch + 1) % self.interval or not is_main_process():
            return
        start = time.perf_counter()
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        if self._probe is None:
            self._build_probe(runner, model)
        data, size = self._probe, self.num_probe
        ow = runner.optim_wrapper
        in_opt = {
            id(p) for grp in ow.optimizer.param_groups for p in grp['params']
        }
        params = [
            p
            for p in model.parameters()
            if id(p) in in_opt
            and p.requires_grad
            and getattr(p, 'sam_perturb', True)
        ]

        # The model protocol's own closure, in fp32 (no autocast context).
        closure = LossClosure(data, size, model, contextlib.nullcontext)
        scores = None
        s_min = s_max = None
        if self._scored:
            scores = torch.full((size,), math.nan, dtype=torch.float64)
            known = self._probe_idx < ow.selection_counts().numel()
            scores[known] = ow.sample_scores(self._probe_idx[known]).double()
            s_min = float(_setting(ow, 's_min'))
            # The normalisation bound the next training step would use.
            s_max = s_max_at(
                runner.epoch + 1,
                s_min,
                float(_setting(ow, 's_max')),
                float(_setting(ow, 'warmup_epochs', 0) or 0),
            )
        was_training = model.training
        model.eval()
        try:
            with second_pass(model):  # keeps observers' ranges, BN stats
                res = probe_diagnostics(
                    closure,
                    params,
                    size,
                    rho=self._rho,
                    alpha=self._alpha,
                    draws=self.num_draws,
                    seed=self.seed * 1_000_003 + runner.epoch,
                    scores=scores,
                    s_min=s_min if s_min is not None else 0.1,
                    s_max=s_max if s_max is not None else 0.5,
                    adaptive=bool(_setting(ow, 'adaptive', False)),
                    eta=float(_setting(ow, 'eta', 0.01)),
                )
        finally:
            model.train(was_training)
        cov = None
        if self._counted and self._baseline is not None:
            cov = coverage(self._counts(runner), self._baseline)
        res['seconds'] = time.perf_counter() - start
        self._log(runner, res, cov)

    def _log(self, runner, res: dict, cov: Optional[dict]) -> None:
        scalars = {
            k: float(v)
            for k, v in res.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if cov is not None:
            scalars.update(
                {
                    f'coverage_{k}': float(v)
                    for k, v in cov.items()
                    if k != 'hist'
                }
            )
        scalars = {f'diag/{k}': v for k, v in scalars.items()}
        for k, v in scalars.items():
            runner.message_hub.update_scalar(k, v)
        # The LoggerHook only writes train/ and val/ scalars; write ours.
        runner.visualizer.add_scalars(
            dict(scalars, epoch=runner.epoch + 1), step=runner.iter
        )
        keys = (
            'dlp_spearman',
            'adlp_spearman',
            'err_adlp_w',
            'err_uniform_w',
            'coverage_never_frac',
            'seconds',
        )
        runner.logger.info(
            'diagnostics: '
            + ', '.join(
                f'{k}={scalars["diag/" + k]:.4g}'
                for k in keys
                if 'diag/' + k in scalars
            )
        )
        if not self.save_arrays:
            return
        folder = os.path.join(runner.log_dir, 'diagnostics')
        os.makedirs(folder, exist_ok=True)
        record = dict(
            epoch=runner.epoch + 1,
            iter=runner.iter,
            rho=self._rho,
            alpha=self._alpha,
            sample_idx=self._probe_idx.tolist(),
            scalars=scalars,
        )
        for k in ('grad_norm', 'dlp', 'loss', 'adlp'):
            if k in res:
                record[k] = [_json_float(x) for x in res[k].tolist()]
        if cov is not None:
            record['coverage_hist'] = cov['hist']
            record['coverage_since_epoch'] = self._baseline_epoch
        path = os.path.join(folder, f'epoch_{runner.epoch + 1}.json')
        with open(path, 'w') as f:
            json.dump(record, f)


def _json_float(x: float):
    return None if x != x else x  # NaN (never scored) -> null


def _cuda_devices(model) -> list:
    return sorted(
        {p.device.index or 0 for p in model.parameters() if p.is_cuda}
    )
