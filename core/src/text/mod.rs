//! GPT-2 text: BPE decoding and encoding as microsoft/LoRA's encoder.py, and gpt2_decode.py's files.
