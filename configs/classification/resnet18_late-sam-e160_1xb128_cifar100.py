# ResNet-18 on CIFAR-100, late-phase SAM: plain SGD for epochs 0-159, SAM (rho
# 0.1) for the last 40 of 200 epochs (SAM applied late in training,
# Andriushchenko & Flammarion 2022; Zhou et al. 2025).
_base_ = ['./resnet18_sam_1xb128_cifar100.py']
optim_wrapper = dict(type='LatePhaseSAMOptimWrapper', start_epoch=160)
