"""Before a ``full`` batch trains anything: is everything it needs on this machine?

A multi-day run that stops on day two for a missing checkpoint costs two days. :func:`check_full_batch`
looks for every device, data set and weight file the ``full`` chapters will ask for, and raises
:class:`PreflightFailed` with one line per missing thing, naming it, where it was looked for, and the
command that fetches it. Nothing is trained or downloaded here (the bundled data set is generated when
no ``--data-root`` is given, as the chapters would).
"""
from __future__ import annotations

from paper_repro.config import STANDIN_SD_MODEL, TINY_SD_MODEL, get_config, sd_model_for
from paper_repro.data.mvtec import categories as categories_in
from paper_repro.data.roots import resolve_data
from paper_repro.errors import UserError
from paper_repro.runs.devices import resolve_device
from paper_repro.weights import locate_inception, locate_stable_diffusion, locate_timm


class PreflightFailed(UserError):
    """Several things a batch needs are missing; ``problems`` holds one line for each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def needed_categories(scale: str) -> list[str]:
    """The MVTec AD categories the DADNet chapters of ``scale`` read (training chapter, Tables 1-4)."""
    plan = get_config("baselines", scale)
    wanted = [*get_config("dadnet", scale).categories, *plan.categories, *plan.ablation_categories]
    return list(dict.fromkeys(wanted))


def data_problems(data_root: str | None, seed: int) -> list[str]:
    """One line per missing data set (or MVTec AD category) of the full batch."""
    problems = []
    try:
        mvtec = resolve_data(data_root, "mvtec", "full", seed)
        present = set(categories_in(mvtec.root))
        missing = [c for c in needed_categories("full") if c not in present]
        if missing:
            problems.append(f"{mvtec.root}: MVTec AD categories {', '.join(missing)} are missing (DADNet's "
                            "Tables 1-4 use them); unpack mvtec_anomaly_detection.tar.xz there, see README 'Data sets'")
    except UserError as err:
        problems.append(f"MVTec AD: {err}; see README 'Data sets' for the download")
    try:
        resolve_data(data_root, "codebrim", "full", seed)
    except UserError as err:
        problems.append(f"CODEBRIM: {err}; see README 'Data sets' for the download")
    return problems


def weight_problems(sd_model: str | None) -> list[str]:
    """One line per weight file the full chapters load and this machine lacks: SDGM's Stable Diffusion
    checkpoint, Inception-v3 for the FIDs, the baselines' ImageNet backbones (timm)."""
    checks = []
    model = sd_model_for(get_config("dadnet", "full"), sd_model)
    if model not in (TINY_SD_MODEL, STANDIN_SD_MODEL):   # the two the package has itself
        checks.append(lambda: locate_stable_diffusion(model))
    if get_config("gan_tables", "full").fid_features == "inception":
        checks.append(locate_inception)
    plan = get_config("baselines", "full")
    if plan.pretrained:
        for backbone in dict.fromkeys((plan.backbone, plan.rd_backbone)):
            checks.append(lambda backbone=backbone: locate_timm(backbone))
    problems = []
    for check in checks:
        try:
            check()
        except UserError as err:
            problems.append(str(err))
    return problems


def device_problems(devices: list[str]) -> list[str]:
    problems = []
    for device in devices:
        try:
            resolve_device(device)
        except UserError as err:
            problems.append(str(err))
    return problems


def check_full_batch(data_root: str | None, devices: list[str], seed: int, sd_model: str | None = None) -> None:
    """Raise :class:`PreflightFailed` listing everything the full batch needs and this machine lacks."""
    problems = device_problems(devices) + data_problems(data_root, seed) + weight_problems(sd_model)
    if problems:
        raise PreflightFailed(problems)


__all__ = ["PreflightFailed", "needed_categories", "data_problems", "weight_problems", "device_problems",
           "check_full_batch"]
