# The paper's recipe: 200 epochs, SGD lr 0.1 (batch 128), momentum 0.9, weight
# decay 5e-4, cosine decay to 0 (stepped per iteration).
max_epochs = 200
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
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
# Scale lr with the total batch when training with another batch size
# (tools/train.py --auto-scale-lr).
auto_scale_lr = dict(base_batch_size=128, enable=False)
