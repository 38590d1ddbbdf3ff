# ResNet-18 (3x3 stem, no max-pool) on CIFAR-100, SAF: one pass per step plus
# the KL to each sample's own outputs of lag epochs earlier, Du et al. 2022b
# (NeurIPS 2022, Sec. 4.2): lambda 0.3, temperature 5, E_start 5, E~ 3 as in
# the authors' SAF settings (--reinforce 0.3 --temperature 5
# --kl_start_epoch 5 --minus_epoch 3). Same SGD, schedule and data as SGD.
_base_ = ['./resnet18_sgd_1xb128_cifar100.py']
optim_wrapper = dict(
    type='SAFOptimWrapper',
    lag=3,
    kl_weight=0.3,
    temperature=5.0,
    start_epoch=5,
)
