# W4A4 QAT of MobileNetV1 on CIFAR-10 with AUSAM-0.5 (rho 0.05, s_min 0.1,
# s_max 0.5 ramped over 5 epochs, one full-SAM epoch first).
_base_ = ['./mobilenet-v1_w4a4_sgd_1xb128_cifar10.py']
optim_wrapper = dict(
    type='AUSAMOptimWrapper',
    rho=0.05,
    alpha=0.5,
    s_min=0.1,
    s_max=0.5,
    warmup_epochs=5,
    init_epochs=1,
    selector='adlp',
    score_average='mean',
)
