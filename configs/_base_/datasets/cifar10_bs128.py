# CIFAR-10 (python pickle batches; download=True fetches them into data_root).
# Batch augmentation path: the dataloader only decodes and packs uint8 images;
# the data preprocessor pads-and-crops (4 px), flips and applies Cutout on the
# device.
dataset_type = 'CIFAR10'
data_root = 'data/cifar10'
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    batch_augment=dict(padding=4, flip_prob=0.5, cutout_size=16),
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
        download=True,
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
        split='test',
        download=True,
        pipeline=test_pipeline,
    ),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
