"""Defect detection with synthesized samples (Defect-GAN §3.2, §4.2, Table 3), and the synthesizers
Tables 1-3 compare.

- :mod:`.grl` the gradient-reversal layer; :mod:`.models` ResNet34 / DenseNet121 with a multi-label
  head and the source classifier behind the GRL; :mod:`.accuracy` CODEBRIM's exact-match accuracy;
  :mod:`.train` SGD training with a validation-selected checkpoint.
- :mod:`.synthesizers` the Table 1-2 rows (ablation switches, the CycleGAN-style variant) on one budget;
  :mod:`.augment` synthesized defects + restored normals as training sets; :mod:`.experiment` Table 3.
"""
from paper_repro.detection.accuracy import exact_match_accuracy
from paper_repro.detection.grl import GradientReversal, GradientReversalLayer, grad_reverse
from paper_repro.detection.models import DefectClassifier

__all__ = ["GradientReversal", "GradientReversalLayer", "grad_reverse", "DefectClassifier",
           "exact_match_accuracy"]
