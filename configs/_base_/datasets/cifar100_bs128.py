# CIFAR-100: the CIFAR-10 base with the CIFAR-100 batches and statistics.
_base_ = ['./cifar10_bs128.py']
dataset_type = 'CIFAR100'
data_root = 'data/cifar100'
data_preprocessor = dict(
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
)
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
