#!/usr/bin/env python3
"""Writes loralib adapters for the fleet's adapter tests: variants of fixture-tiny/lora_only.pt
(gpt2_ft.py's LoRA-only checkpoint, lora_A / lora_B of c_attn's q and v), each its lora_B
scaled, so each decodes differently on the fixture's base, with torch itself:

  make_loralib_variants.py OUT_DIR NAME=SCALE ...   e.g. flipped=-1.0 double=2.0

OUT_DIR/NAME.pt keeps lora_only.pt's layout and keys (`module.transformer.h.N.attn.c_attn.
lora_A`, ...): what a worker's --adapter-dir holds for a loralib adapter, and what
`lorabeam run --init_checkpoint NAME.pt --base_checkpoint BASE` decodes as an independent
check. Files appear under their names only once complete.
"""
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    source = torch.load(os.path.join(HERE, "fixture-tiny", "lora_only.pt"), map_location="cpu", weights_only=True)
    state = source.get("model_state_dict", source)
    for spec in sys.argv[2:]:
        name, scale = spec.split("=")
        variant = {k: (v * float(scale) if "lora_B" in k else v).clone() for k, v in state.items()}
        wrapped = {"model_state_dict": variant} if "model_state_dict" in source else variant
        path = os.path.join(out, name + ".pt")
        # torch.save names the archive's root folder after the file: save under the final
        # name in a private folder, then move it into place.
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            staged = os.path.join(tmp, name + ".pt")
            torch.save(wrapped, staged)
            os.replace(staged, path)


if __name__ == "__main__":
    main()
