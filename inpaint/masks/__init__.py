"""Masks (docs/protocol.md section 2): QD-IMD-style stroke canvases processed as GDN's `mask_processing.py`,
binned into the six hole-ratio bins of `inpaint.bins`, stored as packed-bit shards with a manifest.

    settings.py  MaskSettings, the `masks:` section of params.yaml
    strokes.py   stroke sources: Quick Draw ndjson, procedural (offline default)
    process.py   one candidate: the seeded draws, the raw canvas, GDN's processing (fast and literal paths)
    generate.py  parallel, deterministic generation until every bin is full
    liu.py       import of Liu et al.'s irregular test masks
    store.py     shards + manifest writer, MaskStore (O(1) reads), check_no_leak
    build.py     build_mask_sets: the masks stage
    pictures.py  contact sheets and the hole-ratio histogram

Attributes are imported lazily so that worker processes and `inpaint.config` import only what they use.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "MaskSettings": "inpaint.masks.settings",
    "build_mask_sets": "inpaint.masks.build",
    "MaskStore": "inpaint.masks.store",
    "MaskStoreError": "inpaint.masks.store",
    "check_no_leak": "inpaint.masks.store",
    "write_mask_pictures": "inpaint.masks.pictures",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'inpaint.masks' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
