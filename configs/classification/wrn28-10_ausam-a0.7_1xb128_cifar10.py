# WRN-28-10 on CIFAR-10, AUSAM-0.7: AUSAM-0.5 on 70% of each batch.
_base_ = ['./wrn28-10_ausam-a0.5_1xb128_cifar10.py']
optim_wrapper = dict(alpha=0.7)
