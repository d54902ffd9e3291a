"""Evaluation, one path for every method of both papers.

- :mod:`.metrics`: image / pixel AUROC, pixel F1 (DADNet eq. 20), pixel AP and F1-max.
- :mod:`.scoring`: predictions of any anomaly detector -> the numbers of DADNet's Tables 1-4 (percent).
- :mod:`.fid`: the Fréchet distance of Defect-GAN's Tables 1-2, always with its feature extractor named.
- :mod:`.artifacts`: the share of a generator's spectral power at period 2 (checkerboard artifacts).
"""
