# CIFAR-10 (python pickle batches; download=True fetches them into data_root).
# CPU augmentation path: albumentations pads-and-crops, flips, normalises and
# applies Cutout per image in the dataloader workers; the data preprocessor
# only stacks. Same augmentation distribution as cifar10_bs128.py (see
# tests/classification/test_augment.py).
_base_ = ['./cifar10_bs128.py']
data_preprocessor = dict(
    _delete_=True,
    type='ClsDataPreprocessor',
    mean=None,
    std=None,
    resize_to=None,
)
_norm = dict(
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    resize_to=None,
)
train_pipeline = [
    dict(type='LoadClsImage'),
    dict(
        type='AlbuClsAugment',
        train=True,
        padding=4,
        flip_prob=0.5,
        cutout_size=16,
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
