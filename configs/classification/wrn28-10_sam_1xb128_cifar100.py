# WideResNet-28-10 on CIFAR-100, SAM (rho 0.1) around the same SGD.
_base_ = ['./wrn28-10_sgd_1xb128_cifar100.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.1)
