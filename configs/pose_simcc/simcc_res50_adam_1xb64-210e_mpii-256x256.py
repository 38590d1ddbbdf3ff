# SimCC with a ResNet-50 backbone on MPII at 256x256, Adam (paper Table 4,
# "Adam"): mmpose's simcc_res50_wo-deconv-8xb64-210e_mpii-256x256 recipe. The
# SAM and AUSAM configs inherit this one and change the optimizer wrapper.
_base_ = ['../_base_/pose_default_runtime.py']

train_cfg = dict(by_epoch=True, max_epochs=210, val_interval=10)

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=5e-4))

param_scheduler = [
    dict(
        type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False
    ),  # warm-up
    dict(
        type='MultiStepLR',
        begin=0,
        end=210,
        milestones=[170, 200],
        gamma=0.1,
        by_epoch=True,
    ),
]
auto_scale_lr = dict(base_batch_size=512)

codec = dict(
    type='SimCCLabel', input_size=(256, 256), sigma=6.0, simcc_split_ratio=2.0
)

model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
    ),
    # ImageNet weights: set checkpoint='path/to/resnet50-0676ba61.pth'
    # (torchvision's file; nothing is downloaded at run time).
    backbone=dict(type='ResNet', depth=50, checkpoint=None),
    head=dict(
        type='SimCCHead',
        in_channels=2048,
        out_channels=16,
        input_size=codec['input_size'],
        in_featuremap_size=tuple(s // 32 for s in codec['input_size']),
        simcc_split_ratio=codec['simcc_split_ratio'],
        deconv_out_channels=None,
    ),
    loss=dict(type='KLDiscreteLoss', use_target_weight=True),
    codec=codec,
    test_cfg=dict(flip_test=True),
)

dataset_type = 'MpiiDataset'
data_mode = 'topdown'
data_root = 'data/mpii/'

# sample_idx (the dataset index) must reach the AUSAM score table.
meta_keys = (
    'id',
    'img_id',
    'img_path',
    'category_id',
    'ori_shape',
    'img_shape',
    'input_size',
    'input_center',
    'input_scale',
    'flip',
    'flip_direction',
    'flip_indices',
    'dataset_name',
    'sample_idx',
)

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform', shift_prob=0),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs', meta_keys=meta_keys),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs', meta_keys=meta_keys),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    # Random transforms: workers restart each epoch so their random streams
    # (seeded from the epoch's torch stream, see RandomStreamsHook) come
    # back on resume.
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/mpii_train.json',
        data_prefix=dict(img='images/'),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/mpii_val.json',
        headbox_file=f'{data_root}/annotations/mpii_gt_val.mat',
        data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader

default_hooks = dict(checkpoint=dict(save_best='PCK', rule='greater'))

val_evaluator = dict(type='MpiiPCKAccuracy')
test_evaluator = val_evaluator
