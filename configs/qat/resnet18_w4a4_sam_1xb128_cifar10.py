# W4A4 QAT of ResNet-18 on CIFAR-10 with SAM (rho 0.05) around SGD. The
# perturbation touches the weights only: with min/max observers the quantizers
# have no parameters.
_base_ = ['./resnet18_w4a4_sgd_1xb128_cifar10.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.05)
