# Runtime of the QAT configs: the classification runtime in the QAT scope,
# plus the calibration hook, which sets every quantizer's range/step from 16
# training batches before the first iteration (skipped when the quantizer
# state comes from a checkpoint), and the core's per-epoch SAM/AUSAM logging.
_base_ = ['./default_runtime.py']
default_scope = 'tasks.qat'
custom_imports = dict(
    imports=['ausam_tasks', 'tasks.classification', 'tasks.qat'],
    allow_failed_imports=False,
)
custom_hooks = [
    dict(type='SharpnessAwareLoggerHook'),
    dict(type='SharpnessAwareStateHook'),
    dict(type='QATCalibrationHook', num_batches=16),
]
