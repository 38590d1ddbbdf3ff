# mmpretrain's stock DeiT-tiny ImageNet config (AdamW, Mixup + CutMix,
# label smoothing, gradient clipping), trained with AUSAM-0.5: the same
# three settings as on ResNet-18 (docs/mmpretrain.md).
_base_ = ['mmpretrain::deit/deit-tiny_4xb256_in1k.py']

custom_imports = dict(imports=['ausam_tasks.mmpretrain'])
model = dict(type='SAMImageClassifier')
optim_wrapper = dict(
    constructor='SAMOptimWrapperConstructor',
    sam=dict(type='AUSAMOptimWrapper', alpha=0.5),
)
