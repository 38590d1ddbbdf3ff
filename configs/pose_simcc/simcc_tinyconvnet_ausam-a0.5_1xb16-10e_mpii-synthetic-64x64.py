# CPU smoke run (about a minute): a tiny CNN on the generated stick-figure
# data, python -m tasks.pose_simcc.fixtures data/mpii_synthetic Same data
# format, pipeline, metric and AUSAM wrapper as the MPII configs.
_base_ = ['./simcc_res50_adam_1xb64-210e_mpii-256x256.py']

data_root = 'data/mpii_synthetic/'
input_size = (64, 64)
codec = dict(
    type='SimCCLabel', input_size=input_size, sigma=2.0, simcc_split_ratio=2.0
)

model = dict(
    backbone=dict(_delete_=True, type='TinyConvNet', channels=(16, 32, 64)),
    head=dict(
        in_channels=64, input_size=input_size, in_featuremap_size=(8, 8)
    ),
    codec=codec,
)

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform', shift_prob=0),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs', meta_keys={{_base_.meta_keys}}),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='PackPoseInputs', meta_keys={{_base_.meta_keys}}),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        headbox_file=f'{data_root}/annotations/mpii_gt_val.mat',
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=10, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', begin=0, end=20, start_factor=0.1, by_epoch=False)
]
default_hooks = dict(logger=dict(interval=8), checkpoint=dict(interval=5))

optim_wrapper = dict(
    type='AUSAMOptimWrapper',
    alpha=0.5,
    rho=0.05,
    s_min=0.1,
    s_max=0.5,
    warmup_epochs=3,
    init_epochs=1,
    optimizer=dict(type='Adam', lr=3e-3),
)
