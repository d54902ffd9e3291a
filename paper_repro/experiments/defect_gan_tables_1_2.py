"""Defect-GAN's Tables 1 and 2 (§4.1, §4.3): which FID features they are measured with, and their verdicts.

The rows themselves are the synthesizers of :mod:`paper_repro.experiments.synthesizers`; this module
holds what the two chapters decide from their numbers, so both are tested like the other tables.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from paper_repro.context import RunContext, as_context
from paper_repro.evaluation import fid
from paper_repro.results.reading import Effect, Spread, Verdict, best_of, improvement, ordering

IDEAL = "Ideal Defect Synthesizer"   # two halves of the real defects: first by construction, never ranked


def table_extractor(ctx: RunContext | str, codebrim, image_size: int, seed: int = 42, progress: bool = True):
    """The FID feature extractor of Tables 1 and 2 at the context's scale: ``gan_tables.fid_features`` (``inception``
    at ``full``, the paper's FID, so a missing checkpoint stops the chapter before anything trains with
    one line naming the file and how to fetch it; ``auto`` at smoke and demo, the in-domain CNN here)."""
    kind = as_context(ctx).config("gan_tables").fid_features
    return fid.resolve_extractor(kind, codebrim=codebrim, image_size=image_size, ctx=ctx, seed=seed,
                                 progress=progress)


def table1_verdicts(scores: pd.DataFrame, paper_fid: Mapping[str, float], converged: bool | str = True) -> list[Verdict]:
    """Table 1's claims against ``scores`` (one row per ``method`` and ``seed`` with its ``fid``): the re-run
    generators rank as in the paper (the ideal row left out: it is first by construction), and Defect-GAN
    has the lowest FID of them (the paper's relative gap planning the seeds a test would need)."""
    per_seed = {m: Spread.of(part["fid"]) for m, part in scores.groupby("method", sort=False)}
    generators = {m: s for m, s in per_seed.items() if m != IDEAL and m in paper_fid}
    found = []
    if len([m for m in paper_fid if m in generators]) >= 3:
        found.append(ordering("Table 1", "the re-run generators rank as in the paper", paper_fid, generators,
                              lower_is_better=True, converged=converged))
    if "Defect-GAN" in generators and min(s.n for s in generators.values()) >= 2:
        found.append(best_of("Table 1", f"Defect-GAN has the lowest FID of the synthesizers "
                             f"({paper_fid['Defect-GAN']:.1f} in the paper)", "Defect-GAN", generators,
                             higher_is_better=False, converged=converged, paper=paper_fid, paper_units=False))
    return found


def table2_verdicts(per_row: Mapping[str, Spread], paper_fid: Mapping[str, float],
                    converged: bool | str = True) -> list[Verdict]:
    """Table 2's claims against ``per_row`` ({row label: FID over training seeds}): the six rows rank as
    in the paper, layer-wise composition lowers FID (SCC+LWC below SCC), and all four switches give the
    lowest FID. FID here is on another feature space, so the paper's gaps only plan seeds (relative)."""
    found = [ordering("Table 2", "the six rows rank as in the paper", paper_fid, per_row, lower_is_better=True,
                      converged=converged)]
    if min(s.n for s in per_row.values()) >= 2:
        lwc, scc = per_row["SCC+LWC"], per_row["SCC"]
        found.append(improvement("Table 2", f"layer-wise composition lowers FID (SCC {paper_fid['SCC']:.1f} -> "
                                 f"SCC+LWC {paper_fid['SCC+LWC']:.1f} in the paper)", ("SCC+LWC", lwc), ("SCC", scc),
                                 higher_is_better=False, converged=converged,
                                 paper_effect=Effect.relative(paper_fid["SCC+LWC"], paper_fid["SCC"], scc.mean, False)))
        found.append(best_of("Table 2", f"Defect-GAN (all four switches) has the lowest FID "
                             f"({paper_fid['SCC+ANI+LWC+SC']:.1f} in the paper)", "SCC+ANI+LWC+SC", per_row,
                             higher_is_better=False, converged=converged, paper=paper_fid, paper_units=False))
    return found


__all__ = ["IDEAL", "table_extractor", "table1_verdicts", "table2_verdicts"]
