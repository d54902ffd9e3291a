"""What the bad-inputs table of issue 17 (tests/test_bad_inputs.py) needs besides its cases: the
session's artefacts (built once, through the CLI), digests that say whether a file or folder was
touched, hostile files (decompression bombs, planted pickles) and the tally for the closing line.

Everything runs on the CPU in temporary folders; nothing outside them is read or written.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

# Outcome of each case of the table (True: one line, the right exit status, nothing lost), for the
# count line at the end of the session (tests/conftest.py prints it).
TABLE_OUTCOMES: dict[str, bool] = {}


def count_line() -> str | None:
    """``N bad-input cases tried; M ended in one line with nothing lost`` (None if the table did not run)."""
    if not TABLE_OUTCOMES:
        return None
    ok = sum(TABLE_OUTCOMES.values())
    return (f"issue 17: {len(TABLE_OUTCOMES)} bad-input cases tried; {ok} ended in one line with nothing "
            f"lost ({len(TABLE_OUTCOMES) - ok} did not)")


# ---- session artefacts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Artefacts:
    root: Path
    MV: Path   # MVTec layout, tile + wood, 32 px, 4 train / 2 per test folder
    CB: Path   # CODEBRIM layout, 32 px, 12 train / 3 val / 3 test
    DG: Path   # finished Defect-GAN run: --scale smoke --iterations 5 --data CB
    DD: Path   # finished DADNet run: --scale smoke --epochs 1 --data MV --category tile

    def guarded(self) -> tuple[Path, ...]:
        """The artefacts every case shares: no case may change them."""
        return (self.MV, self.CB, self.DG, self.DD)


def cli(*argv) -> None:
    """Run the CLI in this process; fail loudly if it does not succeed (artefacts only)."""
    from paper_repro.cli import main

    rc = main([str(a) for a in argv])
    assert rc == 0, f"building an artefact failed ({rc}): {' '.join(map(str, argv))}"


def build_artefacts(root: Path) -> Artefacts:
    """Two small data sets and one finished run of each paper, made through the CLI (~10 s)."""
    root.mkdir(parents=True, exist_ok=True)
    mv, cb, dg, dd = root / "mvtec", root / "codebrim", root / "dg_run", root / "dd_run"
    threads = torch.get_num_threads()
    try:
        cli("data", "synth", "--out", mv, "--layout", "mvtec", "--categories", "tile,wood", "--size", "32",
            "--n-train", "4", "--n-test", "2")
        cli("data", "synth", "--out", cb, "--layout", "codebrim", "--size", "32", "--n-train", "12",
            "--n-test", "3")
        cli("defect-gan", "train", "--data", cb, "--scale", "smoke", "--iterations", "5", "--out", dg,
            "--threads", "1", "--normals-source", "background-recrop")
        cli("dadnet", "train", "--data", mv, "--category", "tile", "--scale", "smoke", "--epochs", "1",
            "--out", dd)
    finally:
        torch.set_num_threads(threads)
    return Artefacts(root, mv, cb, dg, dd)


# ---- digests: "untouched" means the same bytes (files) or the same tree of names and bytes --------
def digest(path: Path) -> object:
    path = Path(path)
    if path.is_symlink():
        return ("symlink", os.readlink(path))
    if path.is_file():
        return ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    if path.is_dir():
        entries = []
        for p in sorted(path.rglob("*")):
            rel = str(p.relative_to(path))
            if p.is_file() and not p.is_symlink():
                entries.append((rel, hashlib.sha256(p.read_bytes()).hexdigest()))
            else:
                entries.append((rel, "dir" if p.is_dir() else "other"))
        return ("dir", tuple(entries))
    return ("missing",)


def quick_digest(path: Path) -> object:
    """Names, sizes and mtimes (cheap), for the shared artefacts every case must leave alone."""
    path = Path(path)
    return tuple((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                 for p in sorted(path.rglob("*")) if p.is_file())


# ---- hostile files -------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path: Path, width: int, height: int, bit_depth: int, color_type: int, raw_rows: bytes) -> Path:
    """A PNG written by hand (Pillow cannot write 16-bit RGB/RGBA/LA, nor lie about its size)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw_rows))
            + _png_chunk(b"IEND", b""))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(data)
    return Path(path)


def write_bomb(path: Path, side: int = 100_000) -> Path:
    """A 100-byte PNG whose header declares side x side pixels (far over Pillow's MAX_IMAGE_PIXELS).

    Shared with tests/test_data_images.py (the image modes and the readers' bomb refusals)."""
    return write_png(path, side, side, 8, 2, b"\x00" * 16)


class PlantedPickle:
    """Unpickling this creates ``marker`` (``pathlib.Path.touch``): proof that foreign code ran."""

    def __init__(self, marker: Path):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


PICKLE_FORMATS = ("zip", "legacy", "plain-pickle")  # torch.save's two formats, and a bare pickle


def plant_pickle(path: Path, marker: Path, fmt: str = "zip") -> Path:
    """A file at ``path`` holding a code-running object, in one of :data:`PICKLE_FORMATS`."""
    path, marker = Path(path), Path(marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": {"weight": PlantedPickle(marker)}, "weight": PlantedPickle(marker)}
    if fmt == "plain-pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=fmt == "zip")
    assert not marker.exists()
    return path
