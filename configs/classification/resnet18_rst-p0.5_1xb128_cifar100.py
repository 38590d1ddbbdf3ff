# ResNet-18 on CIFAR-100, RST (Zhao et al. 2022): each step is SAM (rho 0.1)
# with probability 0.5 (constant scheduling function), else a plain SGD step; p
# = 0.5 saves half of SAM's extra passes, the setting of the paper's headline
# result. Draws are seeded (seed, step).
_base_ = ['./resnet18_sam_1xb128_cifar100.py']
optim_wrapper = dict(
    type='RSTOptimWrapper', p_start=0.5, schedule='constant', seed=0
)
