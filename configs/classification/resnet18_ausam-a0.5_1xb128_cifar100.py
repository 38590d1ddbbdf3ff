# ResNet-18 (3x3 stem, no max-pool) on CIFAR-100, AUSAM-0.5: SAM (rho 0.1) on
# an ADLP-sampled 50% of each batch; s_min 0.1, s_max 0.5 (ramped over 30
# epochs), one full-SAM epoch to score every sample.
_base_ = ['./resnet18_sgd_1xb128_cifar100.py']
optim_wrapper = dict(
    type='AUSAMOptimWrapper',
    rho=0.1,
    alpha=0.5,
    s_min=0.1,
    s_max=0.5,
    warmup_epochs=30,
    init_epochs=1,
    selector='adlp',
    score_average='mean',
)
