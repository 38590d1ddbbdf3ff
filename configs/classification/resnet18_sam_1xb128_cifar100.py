# ResNet-18 (3x3 stem, no max-pool) on CIFAR-100, SAM (rho 0.1) around the same
# SGD.
_base_ = ['./resnet18_sgd_1xb128_cifar100.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.1)
