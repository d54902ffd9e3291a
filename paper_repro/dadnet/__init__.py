"""DADNet (Zeng, Cheng and Huang, J. GDUT 2025): a two-stage anomaly detector trained on pseudo-anomalies.

Modules, in the order of the paper:

- :mod:`~paper_repro.dadnet.masks` - random masks M_g (Perlin, random shapes)
- :mod:`~paper_repro.dadnet.dgm` - DGM: noise/texture pseudo-anomalies (the ablation's baseline, DRAEM-style)
- :mod:`~paper_repro.dadnet.sdgm` - SDGM: eq. (1)-(6) over a Stable Diffusion checkpoint or a tiny offline one
- :mod:`~paper_repro.dadnet.pseudo` - training inputs (A, M_g), SDGM outputs cached on disk
- :mod:`~paper_repro.dadnet.dram` - DRAM, eq. (13)-(19)
- :mod:`~paper_repro.dadnet.networks` - reconstructive and discriminative U-Nets (§2.2)
- :mod:`~paper_repro.dadnet.losses` - L_rec eq. (7)-(10), focal loss eq. (11)-(12)
- :mod:`~paper_repro.dadnet.trainer`, :mod:`~paper_repro.dadnet.evaluate` (image score from M_p, metrics)

SDGM's small stand-in for Stable Diffusion (its corpus, pretraining and shipped checkpoint) is a package of
its own, :mod:`paper_repro.standin`; the command line is :mod:`paper_repro.commands.dadnet`.
"""
