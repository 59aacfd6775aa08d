"""sparsesis: semantic image synthesis from sparse layouts with a diffusion model."""
from .classes import LABELMEFACADE, ClassSet
from .synthesizer import Synthesizer

__all__ = ["ClassSet", "LABELMEFACADE", "Synthesizer"]
__version__ = "0.1.0"
