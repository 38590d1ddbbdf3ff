# The CPU study's base config (benchmarks/study --preset cpu): the 100-epoch
# regime left SGD at 98.2-98.5% training-set accuracy (seeds 0, 1), short of
# the >= 99% that shows a fitted training set, so the one change is 1.5x the
# epochs; everything else is as in the 100-epoch config.
_base_ = ['./resnet20-w16_sgd_1xb128-100e_cifar10-2k-16px.py']
max_epochs = 150
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
train_cfg = dict(max_epochs=max_epochs)
