# Runtime of the classification configs (the QAT runtime extends it): the
# task's registry scope, hooks, logging, DDP wrapper.
default_scope = 'tasks.classification'
custom_imports = dict(
    imports=['ausam_tasks', 'tasks.classification'], allow_failed_imports=False
)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        interval=10,
        max_keep_ckpts=3,
        save_last=True,
        # Write to a temporary name, then rename: a kill never leaves a
        # truncated epoch_N.pth.
        backend_args=dict(backend='atomic_local'),
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Loaded checkpoints must fit the model (--non-strict: strict=False).
    checkpoint_check=dict(type='CheckpointCheckHook', strict=True),
    # Global random streams as functions of (seed, epoch/iter, rank), so a
    # resumed run draws what the uninterrupted one drew.
    random_streams=dict(type='RandomStreamsHook'),
)

# Per-epoch wall time, fraction of samples the SAM passes used, AUSAM score
# statistics.
custom_hooks = [
    dict(type='SharpnessAwareLoggerHook'),
    dict(type='SharpnessAwareStateHook'),
]

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

# mmengine's own DDP wrapper bypasses the model's train_step; this one runs the
# SAM-family step through DDP's forward (harmless without distributed
# training).
model_wrapper_cfg = dict(type='SAMDistributedDataParallel')

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)
log_processor = dict(by_epoch=True, window_size=50)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
