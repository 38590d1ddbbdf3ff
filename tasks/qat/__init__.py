"""Quantization-aware training (QAT): fake-quant layers with a straight-through
estimator, ``quantize_model`` for the classification models, an integer check
and the mmengine pieces (``QuantizedClassifier`` model type, calibration hook).
"""

from .engine import (  # registers 'QuantizedClassifier', 'QATCalibrationHook'
    QATCalibrationHook,
    build_quantized_classifier,
    load_float_checkpoint,
)
from .integer import (
    IntegerConv2d,
    IntegerLinear,
    convert_to_integer,
    integer_weight_levels,
)
from .modules import QuantConv2d, QuantLinear
from .quantize import (
    QUANTIZER_PARAM_PATTERN,
    calibrate,
    calibration_mode,
    fold_batchnorm,
    is_calibrated,
    quantizable_layers,
    quantize_model,
    quantizer_parameter_names,
    quantizers,
)
from .quantizers import (
    FakeQuantizer,
    LSQQuantizer,
    MinMaxQuantizer,
    build_quantizer,
    fake_quantize_ste,
    quant_range,
)

__all__ = [
    'FakeQuantizer',
    'MinMaxQuantizer',
    'LSQQuantizer',
    'build_quantizer',
    'fake_quantize_ste',
    'quant_range',
    'QuantConv2d',
    'QuantLinear',
    'quantize_model',
    'quantizable_layers',
    'quantizers',
    'quantizer_parameter_names',
    'QUANTIZER_PARAM_PATTERN',
    'calibrate',
    'calibration_mode',
    'is_calibrated',
    'fold_batchnorm',
    'convert_to_integer',
    'integer_weight_levels',
    'IntegerConv2d',
    'IntegerLinear',
    'QATCalibrationHook',
    'build_quantized_classifier',
    'load_float_checkpoint',
]
