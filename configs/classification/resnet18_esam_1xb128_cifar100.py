# ResNet-18 (3x3 stem, no max-pool) on CIFAR-100, ESAM: SAM with stochastic
# weight perturbation (beta 0.6) and sharpness-sensitive data selection
# (gamma 0.5), Du et al. 2022a (ICLR 2022): the authors' ResNet-18 CIFAR
# command uses --beta 0.6 --gamma 0.5. rho as in SAM.
_base_ = ['./resnet18_sam_1xb128_cifar100.py']
optim_wrapper = dict(type='ESAMOptimWrapper', beta=0.6, gamma=0.5)
