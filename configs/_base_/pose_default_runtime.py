# Runtime shared by the SimCC pose configs (scope: tasks.pose_simcc). The
# scope's registries are children of mmpose's for data/codecs/metrics and of
# mmengine's for models, so mmpose.models is never imported.
default_scope = 'tasks.pose_simcc'
custom_imports = dict(
    imports=['ausam_tasks', 'tasks.pose_simcc'], allow_failed_imports=False
)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Atomic saves: temporary name, then rename (see default_runtime.py).
    checkpoint=dict(
        type='CheckpointHook',
        interval=10,
        backend_args=dict(backend='atomic_local'),
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Loaded checkpoints must fit the model (--non-strict: strict=False).
    checkpoint_check=dict(type='CheckpointCheckHook', strict=True),
    # Global random streams as functions of (seed, epoch/iter, rank), so a
    # resumed run draws what the uninterrupted one drew.
    random_streams=dict(type='RandomStreamsHook'),
)
custom_hooks = [
    # Synchronise BN buffers across ranks at each epoch end (as mmpose does).
    dict(type='SyncBuffersHook'),
    # Log the Table-4 style PCKh table after every val/test run.
    dict(type='PCKhTableHook'),
    # Per-epoch wall time, share of samples in the SAM passes, AUSAM scores.
    dict(type='SharpnessAwareLoggerHook'),
    dict(type='SharpnessAwareStateHook'),
]

# SAM/AUSAM steps under DDP need the SAM-aware wrapper; harmless otherwise.
model_wrapper_cfg = dict(type='SAMDistributedDataParallel')

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='Visualizer', vis_backends=vis_backends, name='visualizer'
)
log_processor = dict(
    type='LogProcessor', window_size=50, by_epoch=True, num_digits=6
)
log_level = 'INFO'
load_from = None
resume = False
backend_args = dict(backend='local')

train_cfg = dict(by_epoch=True)
val_cfg = dict()
test_cfg = dict()
