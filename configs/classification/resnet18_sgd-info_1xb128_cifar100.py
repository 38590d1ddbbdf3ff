# ResNet-18 on CIFAR-100, SGD + InfoBatch (Qin et al. 2024; paper Table 5):
# each epoch, half of the samples whose last loss is below the mean sit out,
# the kept ones weigh 2x; no pruning from epoch ceil(0.875 * 200) = 175 on.
# The LR schedule follows epochs, not the (fewer) iterations.
_base_ = ['./resnet18_sgd_1xb128_cifar100.py']
train_dataloader = dict(
    sampler=dict(
        _delete_=True, type='InfoBatchSampler', prune_ratio=0.5, delta=0.875
    )
)
# The base optimizer's step through the per-sample protocol, so the loss
# weights apply.
optim_wrapper = dict(type='PlainOptimWrapper', infobatch_pass='first')
default_hooks = dict(param_scheduler=dict(type='InfoBatchParamSchedulerHook'))
custom_hooks = [
    dict(type='SharpnessAwareLoggerHook'),
    dict(type='SharpnessAwareStateHook'),
    dict(type='InfoBatchHook'),
]
