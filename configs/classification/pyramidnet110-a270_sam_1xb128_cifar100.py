# PyramidNet-110 (alpha 270, basic blocks) on CIFAR-100, SAM (rho 0.1) around
# the same SGD.
_base_ = ['./pyramidnet110-a270_sgd_1xb128_cifar100.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.1)
