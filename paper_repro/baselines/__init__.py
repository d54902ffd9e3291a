"""The four baselines of DADNet's Tables 1-3 (§3.4.1): FastFlow, PaDiM, Reverse Distillation, STFPM,
as anomalib's torch models trained with plain loops on this project's data (:mod:`.anomalib_models`;
``pip install '.[baselines]'``). The tables themselves are :mod:`paper_repro.experiments`."""
