"""Stack and normalise pose crops."""

from mmengine.model import ImgDataPreprocessor

from ..registry import MODELS


@MODELS.register_module()
class PoseDataPreprocessor(ImgDataPreprocessor):
    """Stacks same-size uint8 crops into a float (B, 3, H, W) tensor and
    normalises.

    Top-down crops all have the network input size, so a size mismatch means a
    pipeline without ``TopdownAffine``; that is reported instead of padded.
    Data samples pass through unchanged (their ``sample_idx`` stays in
    metainfo).
    """

    def forward(self, data, training=False):
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)) and inputs:
            shapes = {tuple(img.shape) for img in inputs}
            if len(shapes) > 1:
                raise ValueError(
                    f'PoseDataPreprocessor got crops of different shapes '
                    f'{sorted(shapes)}; put TopdownAffine(input_size=...) in '
                    'the pipeline so every crop has the network input size'
                )
        return super().forward(data, training)
