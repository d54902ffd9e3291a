"""``python -m paper_repro <command> ...``: one entry point, one sub-command per module.

Each module that owns a command exposes ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed namespace, returning an exit status). Errors a user can fix are
raised as :class:`paper_repro.errors.UserError` and printed as one line, with exit status 2;
argparse's own refusals (an unknown flag, a missing one, a value of the wrong type) are one line too.

Every value a user gives is checked where it enters, by the argument types below, which each command
passes as ``type=`` to argparse: a refused value stops the command before it reads or writes
anything, in one line naming the flag and the value (``error: argument --iterations: expected a
whole number of at least 1, got '0'``). They live here, beside the entry point that owns the
"one line, exit 2" contract, so every command checks a count, a seed, a device or an output folder
the same way:

- :func:`positive_int` (``--epochs``, ``--iterations``, ``--n``, ``--runs``, ``--threads``) and
  :func:`non_negative_int`; :func:`seed_value` (0 to 2**32 - 1, what NumPy's seeding accepts);
- :func:`device_name`: a device this machine has (:func:`paper_repro.runs.devices.resolve_device`);
- :func:`region_box`: four finite numbers ``x0,y0,x1,y1``; :func:`class_list`: a comma-separated list
  (spaces around names are dropped), no name a path; :func:`path_name`: a name that becomes part
  of a file path (``--category``), so it holds no separator and is not ``.``/``..``;
- :func:`output_folder`: an ``--out`` that is a folder or can be created as one;
- :func:`check_run_folder` (called by the commands that take a run folder, not a type): the folder
  holds a readable ``run.json`` with its ``config``, written by the paper the command belongs to.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import math
import os
import sys
from pathlib import Path

from paper_repro.errors import UserError

# Modules that add sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "paper_repro.book.reproduce",
    "paper_repro.book.build",
    "paper_repro.commands.data",
    "paper_repro.commands.defect_gan",
    "paper_repro.commands.dadnet",
    "paper_repro.commands.baselines",
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its refusals raised as one-line :class:`UserError` instead of usage + message."""

    def error(self, message: str):
        # "argument --flag: ..." names the flag and value already; a missing or unknown one points to --help
        hint = "" if message.startswith("argument ") else f" (see {self.prog} --help)"
        raise UserError(message + hint)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m paper_repro",
        description="Defect-GAN and DADNet, reproduced: data, training, synthesis, evaluation and "
        "batch reproduction of the papers' tables.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# ---- argument types ------------------------------------------------------------------------------
# argparse calls them with the text given and reports an ArgumentTypeError as
# "argument --flag: <message>", so each message says what was expected and repeats the value.
MAX_SEED = 2**32 - 1


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    """A count of at least 1 (epochs, iterations, images, runs, threads)."""
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number of at least 0."""
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return value


def seed_value(text: str) -> int:
    """A random seed: a whole number from 0 to 2**32 - 1 (the range NumPy's generators are seeded with)."""
    value = _whole_number(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {MAX_SEED}, got {text!r}")
    return value


def device_name(text: str) -> str:
    """A device this machine has: ``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``xpu`` or ``auto``.

    Returned as given (the commands pass it on); checking it imports torch, which every command
    taking ``--device`` needs anyway."""
    from paper_repro.runs.devices import resolve_device

    try:
        resolve_device(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def region_box(text: str) -> tuple[float, float, float, float]:
    """``x0,y0,x1,y1``: four finite numbers (pixels, or fractions of the image when all are in [0, 1])."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected four numbers x0,y0,x1,y1, got {len(parts)} in {text!r}")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected four numbers x0,y0,x1,y1, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers x0,y0,x1,y1, got {text!r}")
    x0, y0, x1, y1 = values
    if x0 == x1 or y0 == y1:
        raise argparse.ArgumentTypeError(f"the region {text!r} is empty (x0 = x1 or y0 = y1)")
    return values


def _path_problem(name: str) -> str | None:
    """Why ``name`` cannot be one part of a file path (None when it can)."""
    if not name:
        return "is empty"
    if name in (".", "..") or "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name):
        return "would name another folder (it holds a path separator or is '.' or '..')"
    if "\0" in name:
        return "holds a NUL character"
    return None


def path_name(text: str) -> str:
    """A name that becomes part of a file path (a category): no separator, not ``.`` or ``..``."""
    name = text.strip()
    problem = _path_problem(name)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r} {problem}; expected a plain name such as 'tile'")
    return name


def class_list(text: str) -> list[str]:
    """Comma-separated names, spaces around each dropped (``"Crack, Spallation"``); none a path.

    Whether the names are classes of the run is checked once the run is read."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated class names, got {text!r}")
    for name in names:
        problem = _path_problem(name)
        if problem:
            raise argparse.ArgumentTypeError(f"{name!r} {problem}; expected class names such as Crack,Spallation")
    return names


def output_folder(text: str) -> str:
    """An output folder that exists or can be created: nothing on its way is a file, every name in it
    fits the file system, and the nearest folder on its way that exists is writable. Nothing is
    created here; the command creates the folder when it writes into it."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty name")
    path = Path(text).expanduser()
    existing = path
    while True:  # the nearest part of the path that exists
        try:
            existing.stat()
            break
        except FileNotFoundError:
            if existing.parent == existing:  # not even the root or the working folder exists
                raise argparse.ArgumentTypeError(f"{text}: no folder on its way exists") from None
            existing = existing.parent
        except OSError as err:
            raise argparse.ArgumentTypeError(_unusable(text, path, err)) from None
    if not existing.is_dir():
        which = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise argparse.ArgumentTypeError(f"{text} {which}; expected a folder")
    name_max = _name_max(existing)
    too_long = [part for part in path.parts if len(os.fsencode(part)) > name_max]
    if too_long:
        raise argparse.ArgumentTypeError(f"{text}: a name in it is longer than the {name_max} bytes "
                                         "the file system allows")
    if not os.access(existing, os.W_OK | os.X_OK):
        which = "is not writable" if existing == path else f"cannot be created: {existing} is not writable"
        raise argparse.ArgumentTypeError(f"{text} {which}")
    return text


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _unusable(text: str, path: Path, err: OSError) -> str:
    if err.errno == errno.ENOTDIR:  # a file on the way: name it
        for parent in reversed(path.parents):
            if parent.is_file():
                return f"{text} cannot be created: {parent} is a file; expected a folder"
    if err.errno == errno.ENAMETOOLONG:
        return f"{text}: a name in it is longer than the file system allows"
    return f"{text}: cannot be used as a folder ({err.strerror})"


# ---- run folders ---------------------------------------------------------------------------------
def check_run_folder(folder: str | Path, paper: str, flag: str = "--run") -> dict:
    """``run.json`` of ``folder`` if it is a run of ``paper`` (``defect_gan`` or ``dadnet``) whose
    configuration reads back; else one line saying what the folder is instead."""
    from paper_repro.runs.folders import PAPER_NAMES, config_from_run

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{flag} {folder}: no such folder; expected a {PAPER_NAMES[paper]} run folder (with "
                        "run.json)")
    try:
        return config_from_run(folder, paper)[1]
    except UserError as err:
        raise UserError(f"{flag} {err}") from None
