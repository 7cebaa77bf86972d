#!/usr/bin/env python3
"""Writes the fixture's other checkpoint layouts from fixture-tiny/lora_full.pt, with torch and
safetensors themselves, so the repository carries one copy of the weights:

  make_layouts.py OUT_DIR [LORA_FULL_PT]   (default: fixture-tiny/lora_full.pt beside this file)

- OUT_DIR/base_pytorch_model.bin: the base model without LoRA, in the pretrained GPT-2
  pytorch_model.bin layout (`wte.weight`, `h.0.attn.c_attn.weight`, ..., the `attn.bias`
  causal-mask buffers included), written by torch.save (zip format);
- OUT_DIR/base_model.safetensors: the same tensors without the `h.N.attn.bias` buffers,
  written by safetensors.

fixture-tiny/lora_only.pt (committed) holds the LoRA tensors, so base + lora_only is exactly
lora_full. Files appear under their names only once complete.
"""
import os
import sys
import tempfile

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def base_state_dict(lora_full):
    full = torch.load(lora_full, map_location="cpu", weights_only=True)
    state = {name.removeprefix("module."): tensor for name, tensor in full["model_state_dict"].items()}
    # The pretrained layout has the transformer's tensors without their prefix, no LoRA and no
    # lm_head (GPT-2 ties it to wte).
    return {
        name.removeprefix("transformer."): tensor.clone()
        for name, tensor in state.items()
        if name.startswith("transformer.") and "lora_" not in name
    }


def write_atomically(path, save):
    # torch.save names the archive's root folder after the file, so write under the final
    # name in a private folder, then move it into place.
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        staged = os.path.join(tmp, os.path.basename(path))
        save(staged)
        os.replace(staged, path)


def main():
    out = sys.argv[1]
    lora_full = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "fixture-tiny", "lora_full.pt")
    os.makedirs(out, exist_ok=True)
    base = base_state_dict(lora_full)
    write_atomically(os.path.join(out, "base_pytorch_model.bin"), lambda p: torch.save(base, p))
    tensors = {k: v.contiguous() for k, v in base.items() if not k.endswith(".attn.bias")}
    write_atomically(os.path.join(out, "base_model.safetensors"), lambda p: save_file(tensors, p))
    print(f"wrote {out}/base_pytorch_model.bin ({len(base)} tensors), base_model.safetensors ({len(tensors)})")


if __name__ == "__main__":
    main()
