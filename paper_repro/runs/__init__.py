"""What every training run shares, written once for both papers.

- :mod:`.devices`: devices, ``torchrun`` process groups, seeds.
- :mod:`.precision`: mixed-precision autocast and loss scaling.
- :mod:`.checkpoints`: atomic safetensors checkpoints with every RNG state (exact resume).
- :mod:`.folders`: ``run.json``, ``log.csv``, cached run folders and cached tensors.
- :mod:`.loop`: :func:`~paper_repro.runs.loop.fit`, the training loop both trainers call.
"""
