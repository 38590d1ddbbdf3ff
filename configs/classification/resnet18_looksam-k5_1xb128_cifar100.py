# ResNet-18 on CIFAR-100, LookSAM-5 (Liu et al. 2022, Algorithm 1): a SAM step
# (rho 0.1) every 5 steps stores the SAM gradient's part orthogonal to the SGD
# gradient; the 4 steps between are one pass plus that part scaled by alpha
# ||g|| / ||g_v||. k = 5 is the row of the AUSAM paper's Table 2; alpha = 0.7
# as in the LookSAM authors' setting (the AUSAM paper does not state it).
_base_ = ['./resnet18_sam_1xb128_cifar100.py']
optim_wrapper = dict(type='LookSAMOptimWrapper', k=5, alpha=0.7)
