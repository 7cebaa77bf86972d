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

Run once per test run (scripts/test.sh does, before the tests) and by any test that finds the
layouts missing: under a lock on OUT_DIR/.lock it writes them only when OUT_DIR/.made-from does
not name LORA_FULL_PT's current content, so concurrent tests neither redo the work nor replace a
file another test is reading. Up to date, it returns before importing torch.
"""
import fcntl
import hashlib
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LAYOUTS = ("base_pytorch_model.bin", "base_model.safetensors")


def base_state_dict(lora_full):
    import torch

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


def made_from(lora_full):
    """What the layouts are made from: this script and the checkpoint, by content."""
    digest = hashlib.sha256()
    for path in (os.path.abspath(__file__), lora_full):
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest() + "\n"


def main():
    out = sys.argv[1]
    lora_full = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "fixture-tiny", "lora_full.pt")
    os.makedirs(out, exist_ok=True)
    stamp = os.path.join(out, ".made-from")
    want = made_from(lora_full)
    with open(os.path.join(out, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(stamp) as f:
                current = f.read() == want
        except OSError:
            current = False
        if current and all(os.path.exists(os.path.join(out, name)) for name in LAYOUTS):
            print(f"{out}: layouts up to date")
            return
        write_layouts(out, lora_full)
        with open(stamp + ".tmp", "w") as f:
            f.write(want)
        os.replace(stamp + ".tmp", stamp)


def write_layouts(out, lora_full):
    import torch
    from safetensors.torch import save_file

    base = base_state_dict(lora_full)
    write_atomically(os.path.join(out, "base_pytorch_model.bin"), lambda p: torch.save(base, p))
    tensors = {k: v.contiguous() for k, v in base.items() if not k.endswith(".attn.bias")}
    write_atomically(os.path.join(out, "base_model.safetensors"), lambda p: save_file(tensors, p))
    print(f"wrote {out}/base_pytorch_model.bin ({len(base)} tensors), base_model.safetensors ({len(tensors)})")


if __name__ == "__main__":
    main()
