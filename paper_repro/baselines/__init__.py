"""DADNet's results (§3.4): the anomalib baselines of Tables 1-3, the ablation of Table 4, and the
bridge experiment neither paper ran (Defect-GAN samples as DADNet's pseudo-anomalies).

- :mod:`.anomalib_models`: FastFlow, PaDiM, Reverse Distillation, STFPM as anomalib torch models,
  trained with plain loops on :class:`paper_repro.data.MVTecAD` (``pip install '.[baselines]'``).
- :mod:`.scoring`: the one scoring path every column goes through (:mod:`paper_repro.metrics`).
- :mod:`.published`: independent published numbers (anomalib's model READMEs), as data.
- :mod:`.experiments`: per-scale plans, runs (``--runs``), the tables beside the paper's.
- :mod:`.bridge`: pseudo-anomalies from DGM, SDGM and Defect-GAN for the same two-stage detector.
- :mod:`.cli`: ``python -m paper_repro baselines ...``.
"""
