"""``python -m paper_repro <command> ...``: one entry point, one sub-command per module.

Each module that owns a command exposes ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed namespace, returning an exit status). Errors a user can fix are
raised as :class:`paper_repro.errors.UserError` and printed as one line, with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from paper_repro.errors import UserError

# Modules that add sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "paper_repro.book.reproduce",
    "paper_repro.data.cli",
    "paper_repro.defect_gan.cli",
    "paper_repro.dadnet.cli",
    "paper_repro.experiments.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m paper_repro",
        description="Defect-GAN and DADNet, reproduced: data, training, synthesis, evaluation and "
        "batch reproduction of the papers' tables.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
