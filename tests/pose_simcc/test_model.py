"""Backbone, head, estimator modes, coordinate mapping and flip test."""

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from .helpers import CONFIGS, small_config


def _build(cfg):
    from tasks.pose_simcc.registry import DATASETS, MODELS

    init_default_scope(cfg.default_scope)
    return MODELS, DATASETS


def test_resnet_backbones_and_head_shapes():
    from tasks.pose_simcc.models import ResNet, SimCCHead

    x = torch.zeros(1, 3, 256, 256)
    feats = ResNet(depth=50).eval()(x)
    assert tuple(feats[0].shape) == (1, 2048, 8, 8)
    assert tuple(ResNet(depth=18).eval()(x)[0].shape) == (1, 512, 8, 8)
    head = SimCCHead(2048, 16, (256, 256), (8, 8), simcc_split_ratio=2.0)
    px, py = head(feats)
    assert tuple(px.shape) == (1, 16, 512) and tuple(py.shape) == (1, 16, 512)
    deconv = SimCCHead(
        64, 16, (192, 256), (6, 8), 2.0, deconv_out_channels=(32, 32)
    )
    px, py = deconv((torch.zeros(2, 64, 8, 6),))
    assert tuple(px.shape) == (2, 16, 384) and tuple(py.shape) == (2, 16, 512)
    with pytest.raises(ValueError, match='depth'):
        ResNet(depth=20)


def test_paper_config_model_returns_per_sample_losses(mpii_fixture):
    cfg = Config.fromfile(str(CONFIGS['ausam']))
    models, datasets = _build(cfg)
    model = models.build(cfg.model)
    assert type(model).__mro__[1].__name__ == 'SAMTrainStepMixin'
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.update(data_root=str(mpii_fixture), indices=3)
    batch = pseudo_collate([datasets.build(ds_cfg)[i] for i in range(3)])
    data = model.data_preprocessor(batch, True)
    assert data['inputs'].shape == (3, 3, 256, 256)
    assert data['inputs'].dtype == torch.float32
    assert [ds.sample_idx for ds in data['data_samples']] == [0, 1, 2]
    out = model(**data, mode='loss')
    assert out['loss_kpt'].shape == (3,)
    assert torch.isfinite(out['loss_kpt']).all()


def _val_batch(cfg, root, n=8):
    models, datasets = _build(cfg)
    ds_cfg = cfg.val_dataloader.dataset
    # The val pipeline plus SimCC targets, to build "perfect" predictions.
    pipeline = list(ds_cfg.pipeline)
    pipeline.insert(-1, dict(type='GenerateTarget', encoder=cfg.codec))
    ds_cfg.update(pipeline=pipeline, indices=n)
    dataset = datasets.build(ds_cfg)
    return models.build(cfg.model), pseudo_collate(
        [dataset[i] for i in range(n)]
    )


def test_perfect_simcc_maps_back_to_image_keypoints_and_pckh_100(
    mpii_fixture, tmp_path
):
    from tasks.pose_simcc.registry import METRICS

    cfg = small_config('adam', mpii_fixture, tmp_path)
    model, batch = _val_batch(cfg, mpii_fixture)
    samples = batch['data_samples']
    labels = [s.gt_instance_labels for s in samples]
    px = torch.cat([lb.keypoint_x_labels for lb in labels]) * 10
    py = torch.cat([lb.keypoint_y_labels for lb in labels]) * 10
    model.add_predictions(px, py, samples)
    for s in samples:
        seen = s.gt_instance_labels.keypoint_weights[0].numpy() > 0
        assert seen.sum() >= 12
        pred = s.pred_instances.keypoints[0][seen]
        gt = s.gt_instances.keypoints[0][seen]
        # Input pixels are 96/64 * 1.25 image pixels wide-ish; bins are 1/2
        # input pixel, so the round trip is within a bin.
        px_per_input = s.metainfo['input_scale'][0] / 64
        np.testing.assert_allclose(pred, gt, atol=0.5 * px_per_input + 1e-4)
    metric = METRICS.build(cfg.val_evaluator)
    metric.process(batch, [s.to_dict() for s in samples])
    result = metric.compute_metrics(metric.results)
    assert result['PCK'] == pytest.approx(100.0)
    assert result['Head PCK'] == pytest.approx(100.0)


def test_flip_test_is_mirror_symmetric(mpii_fixture, tmp_path):
    cfg = small_config('adam', mpii_fixture, tmp_path)
    model, batch = _val_batch(cfg, mpii_fixture, n=4)
    model.eval()
    flip_indices = batch['data_samples'][0].metainfo['flip_indices']
    x = model.data_preprocessor(batch, False)['inputs']
    with torch.no_grad():
        ax, ay = model.predict_simcc(x, flip_indices)
        fx, fy = model.predict_simcc(x.flip(-1), flip_indices)
        raw_x, _ = model.predict_simcc(x)
    # Averaging with the flipped crop makes the prediction equivariant.
    torch.testing.assert_close(fx, ax[:, flip_indices].flip(-1))
    torch.testing.assert_close(fy, ay[:, flip_indices])
    assert not torch.allclose(raw_x, ax)


def test_predict_mode_fills_pose_data_samples(mpii_fixture, tmp_path):
    from mmpose.structures import PoseDataSample

    cfg = small_config('adam', mpii_fixture, tmp_path)
    model, batch = _val_batch(cfg, mpii_fixture, n=2)
    model.eval()
    data = model.data_preprocessor(batch, False)
    out = model(**data, mode='predict')
    assert all(isinstance(s, PoseDataSample) for s in out)
    assert out[0].pred_instances.keypoints.shape == (1, 16, 2)
    assert out[0].pred_instances.keypoint_scores.shape == (1, 16)
    px, py = model(data['inputs'], mode='tensor')
    assert tuple(px.shape) == (2, 16, 128)


def test_resnet_loads_a_torchvision_state_dict(tmp_path):
    import torchvision

    from tasks.pose_simcc.models import ResNet

    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / 'resnet18.pth'
    torch.save(net.state_dict(), path)
    backbone = ResNet(depth=18, checkpoint=str(path))
    torch.testing.assert_close(backbone.stem[0].weight, net.conv1.weight)
    torch.testing.assert_close(
        backbone.layer4[1].bn2.running_var, net.layer4[1].bn2.running_var
    )
    torch.save({'conv1.weight': net.conv1.weight}, path)
    with pytest.raises(ValueError, match='missing'):
        ResNet(depth=18, checkpoint=str(path))
