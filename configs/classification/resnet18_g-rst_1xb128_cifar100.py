# ResNet-18 on CIFAR-100, G-RST (Zhao et al. 2022): RST's draws (p = 0.5,
# constant), with the gradient-norm-penalty step in place of SAM's:
# g = 0.2 g1/||g1|| + 0.8 grad L(w + 0.1 g1/||g1||), the r and alpha of the
# authors' ResNet CIFAR recipe (docs/methods.md).
_base_ = ['./resnet18_rst-p0.5_1xb128_cifar100.py']
optim_wrapper = dict(type='GRSTOptimWrapper', rho=0.1, alpha=0.8)
