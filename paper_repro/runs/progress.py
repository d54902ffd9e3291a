"""Progress bars: tqdm's (a widget in Jupyter, text elsewhere), off when the environment says so.

A book build executes chapters with ``TQDM_DISABLE=1``: a static page cannot show a widget, and a
frozen bar reads as a hang. tqdm reads that variable only for arguments a caller leaves out, and the
package passes ``disable=not progress`` everywhere, so the switch is applied here, once. The same
switch silences the bars of the Hugging Face libraries (loading weights) where the package calls them.
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm as _tqdm

OFF_ENV = "TQDM_DISABLE"


def bars_off() -> bool:
    """True when ``$TQDM_DISABLE`` is set to a true value (``1``, ``true``, ``yes``)."""
    return os.environ.get(OFF_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def tqdm(*args, disable: bool | None = False, **kwargs):
    """``tqdm.auto.tqdm``, disabled when the caller asks or :func:`bars_off`."""
    return _tqdm(*args, disable=bool(disable) or bars_off(), **kwargs)


tqdm.write = _tqdm.write  # a line printed without breaking a running bar, as tqdm's own


def silence_hugging_face_bars() -> None:
    """Turn off diffusers' and transformers' own bars when :func:`bars_off` (call before loading)."""
    if not bars_off():
        return
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


__all__ = ["OFF_ENV", "bars_off", "tqdm", "silence_hugging_face_bars"]
