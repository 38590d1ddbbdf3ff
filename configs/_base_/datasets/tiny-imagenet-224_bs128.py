# Tiny-ImageNet-200 augmented at 64x64, then resized to 224x224 on the device
# (MobileNetV1 in the paper's Table 3).
_base_ = ['./tiny-imagenet_bs128.py']
data_preprocessor = dict(resize_to=224)
