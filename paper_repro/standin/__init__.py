"""SDGM's stand-in for Stable Diffusion inpainting at ``smoke`` and ``demo``: a small latent diffusion model
the project pretrains itself (:mod:`.pretrain`: its corpus of rendered defects, the VAE, the UNet, the
text encoder) and ships in ``sdgm_standin/`` in the diffusers layout with its model card. DADNet's SDGM
(:mod:`paper_repro.dadnet.sdgm`) loads it exactly as it loads the real checkpoint at ``full``.
"""
