# ResNet-18 on CIFAR-10, K-SAM (Ni et al. 2022): a no-grad forward ranks the
# batch by loss, both SAM passes (rho 0.05) run on the top 50% only. alpha =
# 0.5 matches AUSAM-0.5; the AUSAM paper's K-SAM row is copied from Ni et al.,
# whose k for this setting is not restated there.
_base_ = ['./resnet18_sam_1xb128_cifar10.py']
optim_wrapper = dict(type='KSAMOptimWrapper', alpha=0.5)
