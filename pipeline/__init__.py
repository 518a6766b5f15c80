"""synth-pretrain: synthetic (mask, image) pairs for segmentation pretraining on plant images."""

__version__ = "0.1.0"
