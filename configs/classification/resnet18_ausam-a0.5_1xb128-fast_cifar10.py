# The fast path of resnet18_ausam-a0.5_1xb128_cifar10.py (docs/gpu.md): the
# same training recipe, run faster. Only these switches differ; without them
# the parent config is the paper's plain recipe.
# - bf16 autocast of the forwards (no loss scaling needed). This changes
#   AUSAM's DLP scores themselves, not only the speed: the losses at w and
#   w + eps come from bf16 forwards, so their difference carries bf16
#   rounding, and the scores, selection and subsets differ from the fp32
#   recipe's (docs/gpu.md, "The fast path");
# - the network compiled with CUDA graphs, static shapes: a graph per batch
#   size (128 in the scoring epoch, 64 after it, the short last batch and its
#   subset, the two evaluation sizes) and per SAM pass (BatchNorm momentum
#   differs), ten in all, within recompile_limit;
# - CIFAR-10 held on the device, a batch gathered in one indexing op; the
#   crop / flip / Cutout already run on the device (ClsDataPreprocessor);
# - validation every 10 epochs instead of every epoch.
_base_ = ['./resnet18_ausam-a0.5_1xb128_cifar10.py']
optim_wrapper = dict(dtype='bfloat16')
model = dict(
    compile=dict(mode='reduce-overhead', dynamic=False, recompile_limit=16)
)
# The batch is gathered on the device, in this process: no workers.
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    collate_fn=dict(type='device_batch_collate'),
    dataset=dict(type='DeviceCIFAR10', pipeline=[]),
)
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    collate_fn=dict(type='device_batch_collate'),
    dataset=dict(type='DeviceCIFAR10', pipeline=[]),
)
test_dataloader = val_dataloader
train_cfg = dict(val_interval=10)
