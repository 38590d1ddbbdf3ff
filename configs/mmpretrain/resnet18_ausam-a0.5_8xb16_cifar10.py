# mmpretrain's stock ResNet-18 CIFAR-10 config, trained with AUSAM-0.5.
# These three settings switch any stock mmpretrain classification config
# (docs/mmpretrain.md).
_base_ = ['mmpretrain::resnet/resnet18_8xb16_cifar10.py']

custom_imports = dict(imports=['ausam_tasks.mmpretrain'])
model = dict(type='SAMImageClassifier')
optim_wrapper = dict(
    constructor='SAMOptimWrapperConstructor',
    sam=dict(type='AUSAMOptimWrapper', alpha=0.5),
)
