"""Defect-GAN (Zhang et al., WACV 2021): defect synthesis by defacement and restoration.

Networks (:mod:`.generator`, :mod:`.discriminator`, :mod:`.spade`, :mod:`.noise`), objectives
(:mod:`.losses`), data pools (:mod:`.data`), training (:mod:`.trainer`), control at inference
(:mod:`.control`) and the defect classifier trained with its samples (:mod:`.classifier`, §3.2). What the
chapters look at and the painter widget live with the book (:mod:`paper_repro.book.showcase`,
:mod:`paper_repro.book.painter`), the command line in :mod:`paper_repro.commands.defect_gan`.
"""
from paper_repro.defect_gan.discriminator import Discriminator
from paper_repro.defect_gan.generator import Generator, GeneratorOutput
from paper_repro.defect_gan.noise import NoiseInjection
from paper_repro.defect_gan.spade import SPADE

__all__ = ["Generator", "GeneratorOutput", "Discriminator", "SPADE", "NoiseInjection"]
