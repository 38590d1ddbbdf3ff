# MobileNetV1 on Tiny-ImageNet resized to 224x224, SGD baseline (paper Table
# 3). 200 epochs, batch 128, cosine, Cutout; SGD lr 0.1, momentum 0.9, weight
# decay 5e-4.
_base_ = [
    '../_base_/models/mobilenet-v1.py',
    '../_base_/datasets/tiny-imagenet-224_bs128.py',
    '../_base_/schedules/sgd_cosine_200e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    net=dict(num_classes=200), data_preprocessor={{_base_.data_preprocessor}}
)
