"""The command line's sub-commands, one module each (``python -m paper_repro <command>``; the entry point and
the argument types every command shares are :mod:`paper_repro.cli`).

- :mod:`.data` - ``data synth|check``: write or check a data set
- :mod:`.defect_gan` - ``defect-gan train|synth|...``
- :mod:`.dadnet` - ``dadnet train|eval|sdgm-pretrain``
- :mod:`.baselines` - ``baselines tables|ablation|bridge``: DADNet's Tables 1-4 and the bridge experiment

They sit above everything they run: no paper package, experiment or data module imports a command.
"""
