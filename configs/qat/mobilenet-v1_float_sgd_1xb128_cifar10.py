# Full-precision MobileNetV1 on CIFAR-10 (first conv stride 1 for 32x32
# inputs): the starting point of the MobileNetV1 W4A4 configs. 200 epochs,
# batch 128, cosine, Cutout, SGD lr 0.1.
_base_ = [
    '../_base_/models/mobilenet-v1.py',
    '../_base_/datasets/cifar10_bs128.py',
    '../_base_/schedules/sgd_cosine_200e.py',
    '../_base_/default_runtime.py',
]
model = dict(
    net=dict(num_classes=10, first_stride=1),
    data_preprocessor={{_base_.data_preprocessor}},
)
