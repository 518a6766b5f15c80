"""U-GAT-IT (Kim et al. 2020), light mode."""

from .model import UGATITModel

__all__ = ["UGATITModel"]
