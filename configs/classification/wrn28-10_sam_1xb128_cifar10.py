# WideResNet-28-10 on CIFAR-10, SAM (rho 0.05) around the same SGD.
_base_ = ['./wrn28-10_sgd_1xb128_cifar10.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.05)
