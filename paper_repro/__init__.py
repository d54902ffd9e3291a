"""paper-repro: Defect-GAN (WACV 2021) and DADNet (J. GDUT 2025), reproduced and taught.

The book (``book/``) imports this package; it never redefines what lives here.
"""
from paper_repro.compose import compose

__version__ = "0.1.0"
__all__ = ["compose", "__version__"]
