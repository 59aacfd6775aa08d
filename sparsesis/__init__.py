"""sparsesis: semantic image synthesis from sparse layouts with a diffusion model."""
from .data.classes import LABELMEFACADE, ClassSet
from .synthesizer import Synthesizer

__all__ = ["ClassSet", "LABELMEFACADE", "Synthesizer"]
__version__ = "0.1.0"
