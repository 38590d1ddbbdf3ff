# W4A4 quantization-aware training of MobileNetV1 (first conv stride 1) on
# CIFAR-10, SGD (paper Table 6). Starts from the checkpoint of
# ./mobilenet-v1_float_sgd_1xb128_cifar10.py. Same quantization as the
# ResNet-18 configs (depthwise convs are quantized per output channel too).
_base_ = [
    '../_base_/datasets/cifar10_bs128.py',
    '../_base_/qat_finetune_sgd_30e.py',
    '../_base_/qat_default_runtime.py',
]
model = dict(
    type='QuantizedClassifier',
    model=dict(
        type='ImageClassifier',
        net=dict(type='mobilenet_v1', num_classes=10, first_stride=1),
    ),
    data_preprocessor={{_base_.data_preprocessor}},
    float_checkpoint='work_dirs/mobilenet-v1_float_sgd_1xb128_cifar10/epoch_200.pth',
    w_bits=4,
    a_bits=4,
    first_last_bits=8,
    quantizer='minmax',
    fold_bn=False,
)
