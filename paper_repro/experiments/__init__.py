"""The results tables, one module per table, and the experiment neither paper ran.

- Defect-GAN: :mod:`.synthesizers` (the rows of Tables 1-3, trained on one budget; Tables 1-2's FID),
  :mod:`.defect_gan_table3` (classifiers trained with synthesized samples).
- DADNet: :mod:`.detectors` (what Tables 1-4 share), :mod:`.dadnet_tables_1_3`, :mod:`.dadnet_table4`.
- :mod:`.bridge`: DADNet's detector trained on DGM, SDGM and Defect-GAN pseudo-anomalies.
- the command line, ``python -m paper_repro baselines tables|ablation|bridge``, is
  :mod:`paper_repro.commands.baselines`.
"""
