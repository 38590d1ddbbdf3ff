# MobileNetV1 on Tiny-ImageNet-224, AUSAM-0.6: AUSAM-0.5 on 60% of each batch.
_base_ = ['./mobilenet-v1_ausam-a0.5_1xb128_tiny-imagenet-224.py']
optim_wrapper = dict(alpha=0.6)
