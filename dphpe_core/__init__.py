"""dphpe: differentially private 2D human pose estimation (see DESIGN.md for the data flow)."""

from .config import Config, PRESETS, make_config
from .data import DataBundle, build_data
from .mpii import evaluate_mpii

__all__ = ["Config", "PRESETS", "make_config", "DataBundle", "build_data", "evaluate_mpii"]
__version__ = "0.1.0"
