# ResNet-18 (3x3 stem, no max-pool) on Tiny-ImageNet 64x64, SAM (rho 0.1)
# around the same SGD.
_base_ = ['./resnet18_sgd_1xb128_tiny-imagenet.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.1)
