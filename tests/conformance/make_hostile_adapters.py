"""Writes the hostile adapters of issue 24's probe into an --adapter-dir, each a small file that
crashed, bloated or fooled a worker before the readers were bounded:

  deep.pt       a torch.save zip whose data.pkl nests 100,000 tuples (stack overflow)
  zip64.pt      a torch.save zip whose central directory claims a 2^40-byte storage (zip64 extra)
  memo.pt       a 600-byte state dict of lists of memoized lists 22 levels deep (2^22 copies)
  stride.pt     a tensor of stride 2^62 (a libtorch error with its C++ backtrace)
  bigconfig/    a 1 GiB sparse adapter_config.json
  slow.pt       a zip with a 512 MiB sparse storage: long enough to read that a worker can be
                killed while it reads (with --slow-only, only this one)

Usage: make_hostile_adapters.py DIR [--slow-only NAME]
"""

import io
import os
import struct
import sys
import zipfile
import zlib


def torch_zip(entries):
    """A stored zip (what torch.save writes) of `archive/NAME` entries."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/byteorder", "little")
        for name, data in entries:
            z.writestr("archive/" + name, data)
    return out.getvalue()


def storage_pickle(shape=(2,), stride=(1,), numel=4):
    """A state dict {'w': _rebuild_tensor_v2(storage '0', 0, shape, stride, False, OrderedDict())},
    pickled by hand as torch.save does (protocol 2)."""

    def int_op(v):
        if 0 <= v < 256:
            return b"K" + bytes([v])
        raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw

    def tup(values):
        return b"(" + b"".join(int_op(v) for v in values) + b"t"

    pid = b"(X\x07\x00\x00\x00storage" + b"ctorch\nFloatStorage\n" + b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpu" + int_op(numel) + b"tQ"
    args = b"(" + pid + int_op(0) + tup(shape) + tup(stride) + b"\x89" + b"ccollections\nOrderedDict\n)R" + b"t"
    body = b"ccollections\nOrderedDict\n)R" + b"X\x01\x00\x00\x00w" + b"ctorch._utils\n_rebuild_tensor_v2\n" + args + b"R" + b"s"
    return b"\x80\x02" + body + b"."


def deep():
    n = 100_000
    return torch_zip([("data.pkl", b"\x80\x02" + b"(" * n + b"N" + b"t" * n + b".")])


def memo():
    # A state dict {"l0": L0, ..., "l22": L22}: L0 = [] (memo 0), and L(i) = [L(i-1), L(i-1)]
    # (] ( h(i-1) h(i-1) e q(i)); copied rather than shared, L22 is 2^22 lists.
    key = lambda i: b"X" + struct.pack("<I", len(f"l{i}")) + f"l{i}".encode()
    p = b"\x80\x02}(" + key(0) + b"]q\x00"
    for i in range(1, 23):
        p += key(i) + b"](h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"eq" + bytes([i])
    return torch_zip([("data.pkl", p + b"u.")])


def stride():
    return torch_zip([("data.pkl", storage_pickle(shape=(2, 2), stride=(2**62, 2**62))), ("data/0", b"\x00" * 16)])


def zip64():
    """data/0's central-directory entry says 0xFFFFFFFF bytes, with a zip64 extra of 2^40."""
    pkl = storage_pickle()
    files = [("archive/byteorder", b"little", None), ("archive/data.pkl", pkl, None), ("archive/data/0", b"\x00" * 16, 1 << 40)]
    out, central = bytearray(), bytearray()
    for name, data, claimed in files:
        offset, crc, raw = len(out), zlib.crc32(data), name.encode()
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(data), len(data), len(raw), 0) + raw + data
        extra = b"" if claimed is None else struct.pack("<HHQ", 1, 8, claimed)
        size = len(data) if claimed is None else 0xFFFFFFFF
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, len(data), size,
                               len(raw), len(extra), 0, 0, 0, 0, offset) + raw + extra
    start = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(files), len(files), len(central), start, 0)
    return bytes(out)


def slow(path, size=512 << 20):
    """A stored zip whose data/0 is `size` sparse zero bytes (written with a seek)."""
    pkl = storage_pickle(shape=(size // 4,), numel=size // 4)
    names = [b"archive/byteorder", b"archive/data.pkl", b"archive/data/0"]
    with open(path, "wb") as f:
        central = bytearray()
        for raw, data in zip(names, [b"little", pkl, None]):
            offset = f.tell()
            length = size if data is None else len(data)
            crc = 0 if data is None else zlib.crc32(data)
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, length, length, len(raw), 0) + raw)
            if data is None:
                f.seek(length, os.SEEK_CUR)
            else:
                f.write(data)
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, crc, length, length,
                                   len(raw), 0, 0, 0, 0, 0, offset) + raw
        start = f.tell()
        f.write(central)
        f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 3, 3, len(central), start, 0))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    if len(sys.argv) > 3 and sys.argv[2] == "--slow-only":
        slow(os.path.join(out, sys.argv[3] + ".pt"))
        return
    for name, make in [("deep", deep), ("zip64", zip64), ("memo", memo), ("stride", stride)]:
        with open(os.path.join(out, name + ".pt"), "wb") as f:
            f.write(make())
    big = os.path.join(out, "bigconfig")
    os.makedirs(big, exist_ok=True)
    with open(os.path.join(big, "adapter_config.json"), "wb") as f:
        f.truncate(1 << 30)
    with open(os.path.join(big, "adapter_model.safetensors"), "wb") as f:
        f.write(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")


if __name__ == "__main__":
    main()
