# MobileNetV1 on Tiny-ImageNet resized to 224x224, AUSAM-0.5: SAM (rho 0.1) on
# an ADLP-sampled 50% of each batch; s_min 0.1, s_max 0.5 (ramped over 30
# epochs), one full-SAM epoch to score every sample.
_base_ = ['./mobilenet-v1_sgd_1xb128_tiny-imagenet-224.py']
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
