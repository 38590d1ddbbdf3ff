# ResNet-18 (3x3 stem, no max-pool) on CIFAR-10, SAM (rho 0.05) around the same
# SGD.
_base_ = ['./resnet18_sgd_1xb128_cifar10.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.05)
