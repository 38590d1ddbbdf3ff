# MobileNetV1 on Tiny-ImageNet-224, SAM+Random-0.5: a uniform half of each
# batch (the paper's dynamic-pruning baseline; no scoring epoch).
_base_ = ['./mobilenet-v1_ausam-a0.5_1xb128_tiny-imagenet-224.py']
optim_wrapper = dict(selector='uniform', warmup_epochs=0, init_epochs=0)
