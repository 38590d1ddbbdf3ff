# PyramidNet-110 (alpha 270, basic blocks) on CIFAR-10, SAM (rho 0.05) around
# the same SGD.
_base_ = ['./pyramidnet110-a270_sgd_1xb128_cifar10.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.05)
