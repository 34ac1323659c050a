"""The one writer of results: tables, JSON and whole folders, each replaced atomically.

Results go under one folder (``probe.files.output_root``: ``$PROBE_OUT``, else ./results),
in ``heads/``, ``sweeps/``, ``curves/``, ``reports/`` and ``interventions/``, unless a
command is given ``--out``/``--out-dir``; a head that exists is replaced only when asked
(``--overwrite``).
Every result file a command leaves (sweep, curve, comparison, fine-tuning report, export)
is written here: JSON always through ``to_jsonable`` (numpy values, Paths, NaN -> null), text
and JSON to a temporary name moved into place, and a folder built aside and swapped in by
rename, so a reader or a killed run sees the old result or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from probe.errors import ProbeError
from probe.files import output_root, write_atomic
from probe.jsonable import to_jsonable

OUTPUT_KINDS = ("heads", "sweeps", "curves", "reports", "interventions")


def default_output(kind: str, name: str) -> Path:
    """Where a result of ``kind`` named ``name`` goes when no ``--out`` names a place."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown kind of output {kind!r}")
    return output_root() / kind / name


def claim_head(path: str | Path, overwrite: bool) -> Path:
    """``path`` (a head's JSON) may be written: it is new, or ``overwrite`` says to replace
    it (and one line says so); else a one-line error naming the flag, before any work."""
    from probe.messages import say

    path = Path(path)
    if path.exists():
        if not overwrite:
            raise ProbeError(f"a head exists at {path}; pass --overwrite to replace it")
        say(f"replacing the head at {path} (--overwrite)")
    return path


def write_json(path: str | Path, value) -> Path:
    """``value`` as indented strict JSON (non-finite floats become null), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(to_jsonable(value), indent=2, allow_nan=False) + "\n")
    return path


def write_text(path: str | Path, text: str) -> Path:
    """``text`` with one final newline, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.rstrip("\n") + "\n")
    return path


def staging_folder(target: str | Path) -> Path:
    """An empty folder beside ``target`` to build a replacement in (same filesystem)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))


def replace_folder(staging: str | Path, target: str | Path) -> Path:
    """Swap a finished ``staging`` folder in for ``target``: the old one is renamed aside
    first and removed only after the new one is in place, so a crash leaves one of them."""
    staging, target = Path(staging), Path(target)
    retired = None
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        os.replace(target, retired / target.name)
    os.replace(staging, target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
    return target
