# WRN-28-10 on CIFAR-100, SAM+Random-0.5: a uniform half of each batch
# (the paper's dynamic-pruning baseline; no scoring epoch).
_base_ = ['./wrn28-10_ausam-a0.5_1xb128_cifar100.py']
optim_wrapper = dict(selector='uniform', warmup_epochs=0, init_epochs=0)
