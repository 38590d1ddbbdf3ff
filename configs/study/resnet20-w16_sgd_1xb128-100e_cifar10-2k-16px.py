# The CPU study's base config (benchmarks/study --preset cpu): a regime
# that converges on one CPU core. ResNet-20 (width 16) on 2,000 CIFAR-10
# training JPEGs (200 per class) held at 16x16, 100 epochs, batch 128; SGD
# lr 0.1, momentum 0.9, weight decay 5e-4, cosine to 0 per iteration (He et
# al. 2016's ResNet-20 recipe with the SAM papers' cosine schedule). The
# harness sets data_root (its prepared pickle cache), the seed and the
# optim_wrapper of each method.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/schedules/sgd_cosine_200e.py',
]
custom_imports = dict(
    imports=['ausam_tasks', 'tasks.classification'], allow_failed_imports=False
)
data_root = 'data/study/cifar10-jpg_train200pc_holdout500pc_seed0'
# Pictures are stored at 32x32; the preprocessor pads-and-crops (4 px) and
# flips at 32x32, then halves them to 16x16 (bilinear at factor 2 = the mean
# of each 2x2 block); held-out and training-set evaluation get the same
# halving. No Cutout: the paper's Cutout slows fitting, and the study needs
# SGD to fit its training set (>= 99%) in 100 epochs.
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    batch_augment=dict(padding=4, flip_prob=0.5, cutout_size=0),
    resize_to=16,
)
model = dict(
    type='ImageClassifier',
    net=dict(type='cifar_resnet', depth=20, width=16, num_classes=10),
    data_preprocessor=data_preprocessor,
)
pipeline = [dict(type='LoadClsImage'), dict(type='PackClsInputs')]
# In-memory pickles: loading in the main process beats worker processes that
# would share its one core.
train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CIFAR10', data_root=data_root, split='train', pipeline=pipeline
    ),
)
# split='test' of the prepared cache is the held-out part of the JPEGs.
val_dataloader = dict(
    batch_size=500,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CIFAR10', data_root=data_root, split='test', pipeline=pipeline
    ),
)
val_evaluator = dict(type='Accuracy', topk=(1,))
# The training images without augmentation (training-set accuracy).
test_dataloader = dict(
    batch_size=500,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CIFAR10', data_root=data_root, split='train', pipeline=pipeline
    ),
)
test_evaluator = val_evaluator

# The paper's SGD schedule (the base), over 100 epochs.
max_epochs = 100
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=0.0,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=16),
    checkpoint=dict(
        type='CheckpointHook', interval=25, max_keep_ckpts=1, save_last=True
    ),
)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
