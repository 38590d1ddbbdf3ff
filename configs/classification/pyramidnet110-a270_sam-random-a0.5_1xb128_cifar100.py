# PyramidNet-110 (alpha 270, basic blocks) on CIFAR-100, SAM+Random-0.5: SAM (rho 0.1) on a uniformly drawn half of
# each batch (the paper's dynamic-pruning baseline; no scoring epoch needed).
_base_ = ['./pyramidnet110-a270_sgd_1xb128_cifar100.py']
optim_wrapper = dict(
    type='AUSAMOptimWrapper',
    rho=0.1,
    alpha=0.5,
    s_min=0.1,
    s_max=1.0,
    warmup_epochs=0,
    init_epochs=0,
    selector='uniform',
)
