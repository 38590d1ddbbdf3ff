# Tiny-ImageNet-200 at its native 64x64 (released layout under data_root).
# Cutout 32 = half the side, as 16 on CIFAR's 32. CPU augmentation path:
# albumentations pads-and-crops, flips, normalises and applies Cutout per image
# in the dataloader workers; the data preprocessor only stacks. Same
# augmentation distribution as tiny-imagenet_bs128.py (see
# tests/classification/test_augment.py).
_base_ = ['./tiny-imagenet_bs128.py']
data_preprocessor = dict(
    _delete_=True,
    type='ClsDataPreprocessor',
    mean=None,
    std=None,
    resize_to=None,
)
_norm = dict(
    mean=[122.462, 114.257, 101.363],
    std=[70.496, 68.064, 71.560],
    resize_to=None,
)
train_pipeline = [
    dict(type='LoadClsImage'),
    dict(
        type='AlbuClsAugment',
        train=True,
        padding=4,
        flip_prob=0.5,
        cutout_size=32,
        **_norm,
    ),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadClsImage'),
    dict(type='AlbuClsAugment', train=False, **_norm),
    dict(type='PackClsInputs'),
]
# Workers restart each epoch so their random streams (seeded from the
# epoch's torch stream, see RandomStreamsHook) come back on resume.
train_dataloader = dict(
    num_workers=8,
    persistent_workers=False,
    dataset=dict(pipeline=train_pipeline),
)
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
