# ResNet-50 on Tiny-ImageNet, AUSAM-0.7: AUSAM-0.5 on 70% of each batch.
_base_ = ['./resnet50_ausam-a0.5_1xb128_tiny-imagenet.py']
optim_wrapper = dict(alpha=0.7)
