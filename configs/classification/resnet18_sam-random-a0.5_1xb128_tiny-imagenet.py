# ResNet-18 on Tiny-ImageNet, SAM+Random-0.5: a uniform half of each batch
# (the paper's dynamic-pruning baseline; no scoring epoch).
_base_ = ['./resnet18_ausam-a0.5_1xb128_tiny-imagenet.py']
optim_wrapper = dict(selector='uniform', warmup_epochs=0, init_epochs=0)
