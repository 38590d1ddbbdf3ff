# MobileNetV1 on Tiny-ImageNet resized to 224x224, SAM (rho 0.1) around the
# same SGD.
_base_ = ['./mobilenet-v1_sgd_1xb128_tiny-imagenet-224.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.1)
