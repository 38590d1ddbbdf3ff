# QAT fine-tuning schedule (shared by configs/qat/), starting from a
# full-precision checkpoint: 30 epochs of SGD lr 0.01 (batch 128), momentum
# 0.9, weight decay 5e-4, cosine decay to 0 (stepped per iteration).
max_epochs = 30
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4),
    # LSQ step sizes (parameters named '*_quantizer.scale') get no weight
    # decay.
    paramwise_cfg=dict(custom_keys={'_quantizer.': dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=0.0,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128, enable=False)
