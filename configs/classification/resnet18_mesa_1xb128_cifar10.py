# ResNet-18 (3x3 stem, no max-pool) on CIFAR-10, MESA: one pass per step plus
# the KL to an EMA teacher's outputs, Du et al. 2022b (NeurIPS 2022, Sec.
# 4.3): lambda 0.8, temperature 5, E_start 5 as in the authors' MESA command
# (--reinforce 0.8 --temperature 5 --kl_start_epoch 5). EMA decay 0.9995:
# not pinned down from the paper here (the authors' ImageNet command keeps
# timm's default 0.9998).
# Same SGD, schedule and data as the SGD baseline.
_base_ = ['./resnet18_sgd_1xb128_cifar10.py']
optim_wrapper = dict(
    type='MESAOptimWrapper',
    decay=0.9995,
    kl_weight=0.8,
    temperature=5.0,
    start_epoch=5,
)
