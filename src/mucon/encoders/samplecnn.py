"""SampleCNN: the raw-waveform encoder of CLMR and SemiSupCon.

Every layer divides time by 3, so 3**10 = 59049 samples (about 2.7 s at 22050 Hz) reduce to exactly
one 512-d frame. SemiSupCon's 59535-sample chunks also give one frame (the pools floor the
remainder). Longer inputs give ``samples // 59049`` frames; 59049 samples is the minimum.
"""

from __future__ import annotations

from torch import Tensor, nn

from mucon.encoders.base import Encoder

SAMPLECNN_CHANNELS = (128, 128, 256, 256, 256, 256, 256, 256, 512)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
    return [
        nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding),
        nn.BatchNorm1d(out_channels),
        nn.ReLU(),
    ]


class SampleCNN(Encoder):
    """Conv1d(1,128,k3,s3) + 9 x [Conv1d(k3,p1) + BN + ReLU + MaxPool(3)] + Conv1d(512,512,k1); the ReLU
    runs after the max-pool, which gives the same outputs and gradients (see ``conv_bn_pool_relu``).

    Mean pooling over frames: at the design length there is one frame, and for longer inputs the
    mean of per-window frames is what the papers' downstream protocol does with chunk embeddings.
    """

    pooling = "mean"

    def __init__(self, input_samples: int = 59049, sample_rate: int = 22050):
        super().__init__()
        self.input_samples = input_samples
        self.sample_rate = sample_rate
        self.dim = SAMPLECNN_CHANNELS[-1]

        layers = _conv_bn_relu(1, SAMPLECNN_CHANNELS[0], kernel_size=3, stride=3)
        in_channels = SAMPLECNN_CHANNELS[0]
        for out_channels in SAMPLECNN_CHANNELS:
            conv, norm, relu = _conv_bn_relu(in_channels, out_channels, kernel_size=3, padding=1)
            layers += [conv, norm, nn.MaxPool1d(3), relu]  # ReLU after the pool: the same, on a third of the samples
            in_channels = out_channels
        layers += _conv_bn_relu(in_channels, self.dim, kernel_size=1)
        self.layers = nn.Sequential(*layers)
        self.downsampling = 3 ** (1 + len(SAMPLECNN_CHANNELS))

    @property
    def min_input_samples(self) -> int:
        return self.downsampling

    def forward(self, waveform: Tensor) -> Tensor:
        self.check_input(waveform)
        return self.layers(waveform.unsqueeze(1)).transpose(1, 2)
