"""Real block-level PB sizes of the paper's base models (package data, with provenance).

``fgamcd_opt/data/architectures.json`` is a copy of the block tables of
``shared/data/architectures.json`` (built by ``shared/data/architectures_build.py`` from
torchvision model definitions and the published Llama-2 configs): resnet18, mobilenet_v2 and
inception_v3 with 5-class heads (CIFAR-100 superclass tasks), sizes = 4 B x trainable parameters
(fp32, block level); Llama-2 7B/13B at 2 B per parameter (fp16). The CNN blocks span 3,584 B
(mobilenet_v2 ``features.1``) to 24,307,200 B (inception_v3 ``Mixed_7c``); the paper's stated
range 3.71 KB - 24.31 MB matches inception_v3 alone (its smallest block, ``Conv2d_1a_3x3``, has
3,712 B).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

ALIASES = {
    "inception_v3": "inception_v3@5",
    "resnet18": "resnet18@5",
    "mobilenet_v2": "mobilenet_v2@5",
    "llama2-7b": "llama2-7b",
    "llama2-13b": "llama2-13b",
}


@dataclass(frozen=True)
class ArchBlock:
    name: str
    size_bytes: int
    is_head: bool  # task-specific by construction (classifier heads, LM head and final norm)


@cache
def _data() -> dict:
    with resources.files("fgamcd_opt.data").joinpath("architectures.json").open() as f:
        return json.load(f)


def provenance() -> dict:
    return dict(_data()["provenance"])


def available() -> list[str]:
    return list(ALIASES)


def blocks(arch: str) -> list[ArchBlock]:
    """Ordered block-level PBs of a base architecture (forward order)."""
    key = ALIASES.get(arch, arch)
    table = _data()["architectures"].get(key)
    if table is None:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(ALIASES)}")
    heads = set(table["head_blocks"])
    return [ArchBlock(b["name"], int(b["bytes"]), b["name"] in heads) for b in table["blocks"]]
