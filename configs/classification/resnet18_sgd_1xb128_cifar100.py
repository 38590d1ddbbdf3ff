# ResNet-18 (3x3 stem, no max-pool) on CIFAR-100, SGD baseline (paper Tables
# 1-2). 200 epochs, batch 128, cosine, Cutout; SGD lr 0.1, momentum 0.9, weight
# decay 5e-4.
_base_ = [
    '../_base_/models/resnet18.py',
    '../_base_/datasets/cifar100_bs128.py',
    '../_base_/schedules/sgd_cosine_200e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    net=dict(num_classes=100), data_preprocessor={{_base_.data_preprocessor}}
)
