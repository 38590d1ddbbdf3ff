# A CPU study regime without data augmentation: the 100-epoch config with
# the pad-crop-flip batch augmentation off and 50 epochs (an unaugmented
# training set of 2,000 images is fitted in far fewer epochs). The held-out
# and training-set evaluations are unchanged.
_base_ = ['./resnet20-w16_sgd_1xb128-100e_cifar10-2k-16px.py']
model = dict(data_preprocessor=dict(batch_augment=None))
max_epochs = 50
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
