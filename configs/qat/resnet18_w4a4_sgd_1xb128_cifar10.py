# W4A4 quantization-aware training of ResNet-18 (CIFAR stem) on CIFAR-10, SGD
# (paper Table 6). Starts from the full-precision checkpoint of
# configs/classification/resnet18_sgd_1xb128_cifar10.py. Weights: 4 bit, per
# output channel, symmetric; inputs of every conv/linear: 4 bit (unsigned after
# ReLU, signed for the normalised image); first conv and fc at 8 bit; BatchNorm
# unfolded. Min/max observers with a moving average (Jacob et al. 2018);
# quantizer='lsq' gives LSQ.
_base_ = [
    '../_base_/datasets/cifar10_bs128.py',
    '../_base_/qat_finetune_sgd_30e.py',
    '../_base_/qat_default_runtime.py',
]
model = dict(
    type='QuantizedClassifier',
    model=dict(
        type='ImageClassifier',
        net=dict(type='resnet18', stem='cifar', num_classes=10),
    ),
    data_preprocessor={{_base_.data_preprocessor}},
    float_checkpoint='work_dirs/resnet18_sgd_1xb128_cifar10/epoch_200.pth',
    w_bits=4,
    a_bits=4,
    first_last_bits=8,
    quantizer='minmax',
    fold_bn=False,
)
