#!/usr/bin/env python3
"""Makes HF PEFT LoRA adapters with peft itself, for tests/adapters.rs (lorabeam project code).

  make_peft_adapters.py random OUT_DIR
      A small random GPT-2 (transformers' GPT2Config, float64) saved as OUT_DIR/base.safetensors
      with OUT_DIR/config.json, and for each adapter NAME below: OUT_DIR/NAME/ (peft's
      save_pretrained) and OUT_DIR/NAME.merged.safetensors, peft's own merge_and_unload() of it
      as a full model. Everything is float64, so the merge is exact to compare against.
        all4      every target module lorabeam supports, use_rslora, rank_pattern and
                  alpha_pattern, fan_in_fan_out=True, safetensors (the patterns do not overlap:
                  peft takes the first matching key, and save_pretrained sorts the keys, so
                  overlapping ones can mean one thing when made and another when reloaded);
        regex_bin target_modules as a regex string, fan_in_fan_out=False (peft turns it on for
                  GPT-2's Conv1D), saved as adapter_model.bin.

  make_peft_adapters.py from-loralib OUT_DIR CONFIG_JSON LORA_ONLY_PT R ALPHA
      OUT_DIR/loralib_equiv/: the PEFT adapter equal to a gpt2_ft.py LoRA-only checkpoint
      (loralib MergedLinear on c_attn, q and v): A' = [A_q; A_v] (loralib's lora_A as is),
      B' (3 n_embd, 2r) with B_q in the query rows against the first r columns and B_v in the
      value rows against the last r, r' = 2r, lora_alpha' = 2 alpha (same scaling alpha / r).

init_lora_weights=False, so B is not zero and every adapter changes the model. Files appear
under their final names only once complete.

Each test process that needs the adapters runs this: under a lock on OUT_DIR/.lock it writes
them only when OUT_DIR/.<what>.made-from does not name this script and its inputs, so tests
running at once neither redo the work nor replace files another test is reading. Up to date,
it returns before importing torch.
"""
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile

SHAPE = dict(n_embd=32, n_layer=2, n_head=4, n_positions=128, vocab_size=50257, layer_norm_epsilon=1e-5)

ADAPTERS = {
    "all4": dict(
        config=dict(
            r=8,
            lora_alpha=24,
            use_rslora=True,
            fan_in_fan_out=True,
            target_modules=["c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
            rank_pattern={"h.0.mlp.c_fc": 4, "c_attn": 6},
            alpha_pattern={"h.1.attn.c_proj": 5, "mlp.c_proj": 12},
        ),
        safetensors=True,
    ),
    "regex_bin": dict(
        config=dict(
            r=4,
            lora_alpha=16,
            fan_in_fan_out=False,
            target_modules=r".*\.h\.1\.attn\.c_attn|.*mlp\.c_proj",
        ),
        safetensors=False,
    ),
}


def gpt2(shape, dtype):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(bos_token_id=50256, eos_token_id=50256, **shape)
    return GPT2LMHeadModel(config).to(dtype).eval()


def publish(tmp, final):
    """Moves a finished file or directory into place, replacing an older one."""
    if os.path.isdir(final):
        shutil.rmtree(final)
    os.replace(tmp, final)


def state_dict_for_lorabeam(model):
    # The LM head is tied to wte; safetensors refuses shared storage, and lorabeam ignores it.
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}


def lora_model(base, lora):
    import torch
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(base, LoraConfig(lora_dropout=0.0, bias="none", init_lora_weights=False, **lora))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                # Large enough that the adapter visibly changes beam search.
                param.normal_(0.0, 0.2)
    return model


def random_adapters(out):
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(1234)
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out)
    base = gpt2(SHAPE, torch.float64)
    with torch.no_grad():
        # A less flat random model: larger weights give peakier next-token distributions.
        for name, param in base.named_parameters():
            if name.endswith("weight") and param.dim() == 2:
                param.normal_(0.0, 0.3)
    base_state = state_dict_for_lorabeam(base)
    save_file(base_state, os.path.join(tmp, "base.safetensors"))
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(dict(SHAPE, activation_function="gelu_new"), f)
    for name, spec in ADAPTERS.items():
        fresh = gpt2(SHAPE, torch.float64)
        fresh.load_state_dict(base_state, strict=False)
        fresh.tie_weights()
        model = lora_model(fresh, spec["config"])
        model.save_pretrained(os.path.join(tmp, name), safe_serialization=spec["safetensors"])
        merged = model.merge_and_unload()
        save_file(state_dict_for_lorabeam(merged), os.path.join(tmp, f"{name}.merged.safetensors"))
    for entry in os.listdir(tmp):
        publish(os.path.join(tmp, entry), os.path.join(out, entry))
    os.rmdir(tmp)


def from_loralib(out, config_json, lora_only, r, alpha):
    import torch

    with open(config_json) as f:
        cfg = json.load(f)
    shape = {k: cfg[k] for k in ("n_embd", "n_layer", "n_head", "n_positions") if k in cfg}
    shape.setdefault("n_positions", cfg.get("n_ctx", 1024))
    model = lora_model(gpt2(shape, torch.float32), dict(r=2 * r, lora_alpha=2 * alpha, target_modules=["c_attn"], fan_in_fan_out=True))
    state = torch.load(lora_only, map_location="cpu", weights_only=True)
    state = state.get("model_state_dict", state)
    d = shape["n_embd"]
    with torch.no_grad():
        for layer in range(shape["n_layer"]):
            (a_key,) = [k for k in state if k.endswith(f"h.{layer}.attn.c_attn.lora_A")]
            a, b = state[a_key], state[a_key[:-1] + "B"]
            target = model.base_model.model.transformer.h[layer].attn.c_attn
            b_peft = torch.zeros(3 * d, 2 * r, dtype=b.dtype)
            b_peft[:d, :r] = b[:d]
            b_peft[2 * d :, r:] = b[d:]
            target.lora_A["default"].weight.copy_(a)
            target.lora_B["default"].weight.copy_(b_peft)
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out)
    model.save_pretrained(tmp)
    publish(tmp, os.path.join(out, "loralib_equiv"))


def once(out, what, inputs, make):
    """Runs make() unless OUT/.WHAT.made-from names the same script, input files and values."""
    digest = hashlib.sha256()
    for item in [os.path.abspath(__file__)] + list(inputs):
        # Files by content (tests and scripts/test.sh name them by different paths), values as is.
        if os.path.isfile(item):
            with open(item, "rb") as f:
                digest.update(f.read())
        else:
            digest.update(repr(item).encode())
    want = digest.hexdigest() + "\n"
    os.makedirs(out, exist_ok=True)
    stamp = os.path.join(out, f".{what}.made-from")
    with open(os.path.join(out, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(stamp) as f:
                if f.read() == want:
                    print(f"{out}: {what} up to date")
                    return
        except OSError:
            pass
        make()
        with open(stamp + ".tmp", "w") as f:
            f.write(want)
        os.replace(stamp + ".tmp", stamp)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "random":
        out = sys.argv[2]
        once(out, "random", [], lambda: random_adapters(out))
    elif len(sys.argv) == 7 and sys.argv[1] == "from-loralib":
        out, config_json, lora_only, r, alpha = sys.argv[2:7]
        once(out, "loralib_equiv", [config_json, lora_only, r, alpha],
             lambda: from_loralib(out, config_json, lora_only, int(r), float(alpha)))
    else:
        sys.exit(__doc__)
