# Tiny-ImageNet-200 at its native 64x64 (released layout under data_root).
# Cutout 32 = half the side, as 16 on CIFAR's 32. Batch augmentation path: the
# dataloader only decodes and packs uint8 images; the data preprocessor
# pads-and-crops (4 px), flips and applies Cutout on the device.
dataset_type = 'TinyImageNet'
data_root = 'data/tiny-imagenet-200'
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    mean=[122.462, 114.257, 101.363],
    std=[70.496, 68.064, 71.560],
    batch_augment=dict(padding=4, flip_prob=0.5, cutout_size=32),
    resize_to=None,
)
train_pipeline = [dict(type='LoadClsImage'), dict(type='PackClsInputs')]
test_pipeline = [dict(type='LoadClsImage'), dict(type='PackClsInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline,
    ),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
