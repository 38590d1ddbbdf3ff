# W4A4 QAT of MobileNetV1 on CIFAR-10 with SAM (rho 0.05) around SGD;
# weights-only perturbation.
_base_ = ['./mobilenet-v1_w4a4_sgd_1xb128_cifar10.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.05)
