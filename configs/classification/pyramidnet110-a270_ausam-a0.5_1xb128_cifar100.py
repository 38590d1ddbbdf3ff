# PyramidNet-110 (alpha 270, basic blocks) on CIFAR-100, AUSAM-0.5: SAM (rho
# 0.1) on an ADLP-sampled 50% of each batch; s_min 0.1, s_max 1.0 (ramped over
# 30 epochs), one full-SAM epoch to score every sample.
_base_ = ['./pyramidnet110-a270_sgd_1xb128_cifar100.py']
optim_wrapper = dict(
    type='AUSAMOptimWrapper',
    rho=0.1,
    alpha=0.5,
    s_min=0.1,
    s_max=1.0,
    warmup_epochs=30,
    init_epochs=1,
    selector='adlp',
    score_average='mean',
)
