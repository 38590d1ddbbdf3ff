# mmpretrain's stock ResNet-18 CIFAR-10 config, trained with LookSAM-5
# (docs/mmpretrain.md).
_base_ = ['mmpretrain::resnet/resnet18_8xb16_cifar10.py']

custom_imports = dict(imports=['ausam_tasks.mmpretrain'])
model = dict(type='SAMImageClassifier')
optim_wrapper = dict(
    constructor='SAMOptimWrapperConstructor',
    sam=dict(type='LookSAMOptimWrapper', k=5, alpha=0.7),
)
