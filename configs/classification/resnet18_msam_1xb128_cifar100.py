# ResNet-18 (3x3 stem, no max-pool) on CIFAR-100, Momentum-SAM: one pass per
# step at w - rho v/|v|, v the SGD momentum. rho 3 is Becker et al. 2024's
# setting for SGD on CIFAR (the authors' commands use --optimizer MSAM
# --rho 3). Same SGD, schedule and data as the SGD baseline.
_base_ = ['./resnet18_sgd_1xb128_cifar100.py']
optim_wrapper = dict(type='MSAMOptimWrapper', rho=3.0)
