#!/usr/bin/env python3
"""Writes the crafted test corpus of tests/corpus.rs, deterministically (same bytes on every run).

    python3 tests/corpus/make.py          # from the repository root; rewrites every file in tests/corpus/

Only the standard library is used. The committed files are what the tests read: rerun this script after
changing it and commit the result (`git status tests/corpus` shows what changed). Every file stays far below
100 KB. The valid files double as the seed corpus of the fuzz targets (see fuzz/README.md).

Checkpoints follow the README's format: a safetensors file (8-byte little-endian header length, JSON header
padded with spaces to a multiple of 8, raw little-endian data) whose `__metadata__` holds the walkjump keys.
The base model is a DEEN on 1x4x4 images with one hidden layer of 4 units, so d = 16 and its tensors are
net.l0.weight [4, 16], net.l0.bias [4], net.l1.weight [1, 4], net.l1.bias [1].
"""

import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# Sizes the absurd cases claim: 2^20 x 2^20 f32 values = 4 TiB.
TIB4 = 4 * (1 << 40)


def weights(n, seed=1):
    """n deterministic f32 values in [-0.25, 0.25] (no RNG, so no dependence on Python's version)."""
    return [(((i + seed) * 7919) % 201 - 100) / 400.0 for i in range(n)]


def f32(vals):
    return struct.pack("<%df" % len(vals), *vals)


def f64(vals):
    return struct.pack("<%dd" % len(vals), *vals)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def header_bytes(header):
    """The safetensors envelope of a header given as a dict (compact JSON, key order kept) or raw bytes/str."""
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":"))
    if isinstance(header, str):
        header = header.encode("utf-8")
    pad = (-len(header)) % 8
    header = header + b" " * pad
    return struct.pack("<Q", len(header)) + header


def safetensors_parts(meta, tensors, raw_entries=None):
    """The JSON header (bytes, unpadded) and the data section of a safetensors file.
    meta: dict of strings (or None for no __metadata__); tensors: list of (name, dtype, shape, bytes) laid out
    back to back; raw_entries: extra header entries written as given (for offsets the data does not back)."""
    header = {}
    if meta is not None:
        header["__metadata__"] = meta
    data = b""
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    for name, entry in (raw_entries or {}).items():
        header[name] = entry
    return json.dumps(header, separators=(",", ":")).encode("utf-8"), data


def safetensors(meta, tensors, raw_entries=None):
    header, data = safetensors_parts(meta, tensors, raw_entries)
    return header_bytes(header) + data


def meta(kind="deen", arch=None, sigma="1.0", measurements="1", data=None, **extra):
    m = {
        "format": "walkjump",
        "version": "1",
        "kind": kind,
        "sigma": sigma,
        "measurements": measurements,
        "data": json.dumps(data or {"name": "corpus", "channels": 1, "height": 4, "width": 4},
                           separators=(",", ":")),
        "arch": arch if isinstance(arch, str) else json.dumps(
            arch or {"net": {"type": "mlp", "hidden": [4]}}, separators=(",", ":")),
    }
    m.update(extra)
    return m


def mlp_tensors(prefix, sizes, seed=1, dtype="F32"):
    """Layers prefix.l0, prefix.l1, ... of an MLP with widths sizes = [in, h1, ..., out]."""
    out = []
    pack = f32 if dtype == "F32" else f64
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        out.append((f"{prefix}.l{i}.weight", dtype, [b, a], pack(weights(a * b, seed + 2 * i))))
        out.append((f"{prefix}.l{i}.bias", dtype, [b], pack(weights(b, seed + 2 * i + 1))))
    return out


def deen_tensors(dtype="F32"):
    return mlp_tensors("net", [16, 4, 1], dtype=dtype)


FILES = {}


def put(name, blob):
    assert len(blob) < 100_000, name
    FILES[name] = blob


def checkpoints():
    # --- valid checkpoints (sanity for the generator, and fuzz seeds) ---
    put("valid-deen.safetensors", safetensors(meta(), deen_tensors()))
    put("valid-deen-f64.safetensors", safetensors(meta(), deen_tensors("F64")))
    put("valid-deen-quadratic-sampler.safetensors", safetensors(
        meta(arch={"net": {"type": "mlp", "hidden": [4]}, "quadratic": True}, sigma="0.5",
             sampler=json.dumps({"sampler": {"kind": "cheng", "delta": 0.5, "gamma": 0.5, "u": 1.0},
                                 "every": 10})),
        deen_tensors()))
    put("valid-mdae.safetensors", safetensors(
        meta(kind="mdae", measurements="2"), mlp_tensors("net", [32, 4, 32])))
    vae_arch = {"net": {"type": "mlp", "hidden": [4]}, "latent": 2, "decoder": [3]}
    vae = (mlp_tensors("enc_mu", [16, 4, 2], 3) + mlp_tensors("enc_lam", [16, 4, 2], 5)
           + mlp_tensors("dec", [2, 3, 16], 7))
    put("valid-sigma-vae.safetensors", safetensors(meta(kind="sigma_vae", arch=vae_arch), vae))
    put("valid-alpha-vae.safetensors", safetensors(
        meta(kind="alpha_vae", arch=dict(vae_arch, alpha=0.5)), vae))
    prior = [("prior.mu", "F32", [2], f32(weights(2, 11))), ("prior.log_s", "F32", [2], f32(weights(2, 12))),
             ("prior.w", "F32", [2, 3], f32(weights(6, 13))), ("prior.b", "F32", [3], f32(weights(3, 14)))]
    put("valid-ebm-vae.safetensors", safetensors(
        meta(kind="ebm_vae", arch=dict(vae_arch, prior_hidden=3)), vae + prior))
    # Conv classifier: 1x4x4 -> conv 2 channels, stride 2, kernel 3 (padding 1) -> 2x2x2 = 8 -> fc 3 -> 10 classes.
    conv = [("net.l0.weight", "F32", [2, 1, 3, 3], f32(weights(18, 21))),
            ("net.l0.bias", "F32", [2], f32(weights(2, 22)))]
    conv += [("net.l1.weight", "F32", [3, 8], f32(weights(24, 23))), ("net.l1.bias", "F32", [3], f32(weights(3, 24))),
             ("net.l2.weight", "F32", [10, 3], f32(weights(30, 25))), ("net.l2.bias", "F32", [10], f32(weights(10, 26)))]
    put("valid-conv-classifier.safetensors", safetensors(
        meta(kind="classifier", sigma="0",
             arch={"net": {"type": "conv", "channels": [2], "strides": [2], "kernel": 3, "fc": [3]}, "classes": 10}),
        conv))

    good = safetensors(meta(), deen_tensors())
    n = struct.unpack("<Q", good[:8])[0]

    # --- the envelope ---
    put("empty.safetensors", b"")
    put("short-prefix.safetensors", good[:5])
    # Cut in the middle of the JSON header: the prefix promises n bytes, n // 2 follow.
    put("truncated-header.safetensors", good[:8 + n // 2])
    # Prefix claims a 1 TiB header in front of a few bytes.
    put("header-past-end.safetensors", struct.pack("<Q", 1 << 40) + good[8:8 + 64])
    put("header-not-json.safetensors", header_bytes("this is not JSON, just text") + b"\0" * 16)
    put("header-not-object.safetensors", header_bytes("[1, 2, 3]"))
    # A byte that is not UTF-8 (0xff) inside the `kind` value of __metadata__.
    header, data = safetensors_parts(meta(kind="deen@"), deen_tensors())
    put("metadata-not-utf8.safetensors", header_bytes(header.replace(b"deen@", b"deen\xff")) + data)
    put("trailing-bytes.safetensors", good + b"junk")
    put("data-truncated.safetensors", good[:-3])

    # --- tensor entries ---
    t = deen_tensors()
    put("dtype-i32.safetensors", safetensors(
        meta(), [(nm, "I32", sh, struct.pack("<%di" % numel(sh), *range(numel(sh)))) if nm == "net.l0.bias"
                 else (nm, dt, sh, b) for nm, dt, sh, b in t]))
    # Text from the file in the message stays on one line: a dtype with a newline; and a tensor listed twice whose
    # first entry has one (JSON keeps the last duplicate, the safetensors crate reads the first: found by the
    # checkpoint fuzz target).
    put("dtype-newline.safetensors", safetensors(
        meta(), [(nm, "F\n32", sh, b) if nm == "net.l1.bias" else (nm, dt, sh, b) for nm, dt, sh, b in t]))
    header, data = safetensors_parts(meta(), t)
    dup = b'"net.l1.bias":{"dtype":"F\\n32","shape":[1],"data_offsets":[288,292]},'
    at = header.index(b'"net.l0.weight"')
    put("duplicate-tensor-newline.safetensors", header_bytes(header[:at] + dup + header[at:]) + data)
    put("dtype-f16.safetensors", safetensors(
        meta(), [(nm, "F16", sh, b[: 2 * numel(sh)]) if nm == "net.l1.bias" else (nm, dt, sh, b)
                 for nm, dt, sh, b in t]))
    # net.l0.weight says [4, 16] (256 bytes) but its offsets span 60 values (240 bytes).
    put("shape-bytes-mismatch.safetensors", safetensors(
        meta(), [(nm, dt, sh, b[:240]) if nm == "net.l0.weight" else (nm, dt, sh, b) for nm, dt, sh, b in t]))
    # Consistent safetensors, but net.l0.weight is [4, 15] where the architecture (d = 16) needs [4, 16].
    put("shape-arch-mismatch.safetensors", safetensors(
        meta(), [(nm, dt, [4, 15], f32(weights(60))) if nm == "net.l0.weight" else (nm, dt, sh, b)
                 for nm, dt, sh, b in t]))
    put("nan-weights.safetensors", safetensors(
        meta(), [(nm, dt, sh, f32([float("nan") if i % 8 == 3 else v for i, v in enumerate(weights(64))]))
                 if nm == "net.l0.weight" else (nm, dt, sh, b) for nm, dt, sh, b in t]))
    put("inf-weights.safetensors", safetensors(
        meta(), [(nm, dt, sh, f32([float("inf"), float("-inf"), 0.5, 0.25])) if nm == "net.l1.weight"
                 else (nm, dt, sh, b) for nm, dt, sh, b in t]))
    put("f64-out-of-range.safetensors", safetensors(
        meta(), [(nm, "F64", sh, f64([1e300] + weights(numel(sh) - 1))) if nm == "net.l0.bias"
                 else (nm, dt, sh, b) for nm, dt, sh, b in t]))
    # Offsets claiming 4 TiB of data in a file of a few hundred bytes.
    put("absurd-offsets.safetensors", safetensors(
        meta(), t, raw_entries={"huge": {"dtype": "F32", "shape": [1 << 20, 1 << 20],
                                         "data_offsets": [0, TIB4]}}))
    # A shape of 4 TiB whose offsets span only 64 bytes.
    put("absurd-shape.safetensors", safetensors(
        meta(), [(nm, dt, [1 << 20, 1 << 20], b) if nm == "net.l0.weight" else (nm, dt, sh, b)
                 for nm, dt, sh, b in t]))
    # A shape whose element count overflows 64 bits.
    put("absurd-shape-overflow.safetensors", safetensors(
        meta(), [(nm, dt, [1 << 32, 1 << 32, 16], b) if nm == "net.l0.weight" else (nm, dt, sh, b)
                 for nm, dt, sh, b in t]))
    # A valid file whose architecture asks for a 65536 x 2^24 first layer (4 TiB of f32) on 1x4096x4096 data.
    put("absurd-arch.safetensors", safetensors(
        meta(arch={"net": {"type": "mlp", "hidden": [65536, 65536]}},
             data={"name": "huge", "channels": 1, "height": 4096, "width": 4096}), t))
    # Data dims whose product is beyond the 2^24 limit.
    put("absurd-data-dims.safetensors", safetensors(
        meta(data={"name": "huge", "channels": 4096, "height": 4096, "width": 4096}), t))
    put("overlapping-offsets.safetensors", safetensors(
        meta(), t[:-1], raw_entries={"net.l1.bias": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}))

    # --- metadata ---
    put("no-metadata.safetensors", safetensors(None, t))
    put("not-walkjump.safetensors", safetensors(dict(meta(), format="pytorch"), t))
    put("future-version.safetensors", safetensors(dict(meta(), version="7"), t))
    put("unknown-kind.safetensors", safetensors(meta(kind="gan"), t))
    put("sigma-nan.safetensors", safetensors(meta(sigma="NaN"), t))
    put("sigma-negative.safetensors", safetensors(meta(sigma="-1"), t))
    m = meta()
    del m["sigma"]
    put("missing-sigma.safetensors", safetensors(m, t))
    put("arch-not-json.safetensors", safetensors(meta(arch='{"net": {"type": "mlp", "hidden": [4]'), t))
    put("arch-not-object.safetensors", safetensors(meta(arch="[4, 4]"), t))
    put("arch-unknown-net.safetensors", safetensors(meta(arch={"net": {"type": "transformer", "layers": 2}}), t))
    put("metadata-value-not-string.safetensors", header_bytes(
        {"__metadata__": {"format": "walkjump", "version": 1}}))

    # Text from the file echoed in a message must not break it over lines (the run_json fuzz target's finding).
    put("sigma-inf-newline.safetensors", safetensors(meta(sigma="\ninf\n"), t))
    put("sigma-negative-newline.safetensors", safetensors(meta(sigma="-1\n"), t))
    put("arch-newline.safetensors", safetensors(meta(arch={"net": {"type": "mlp\nrm -rf", "hidden": [4]}}), t))

    # --- the architecture ---
    put("missing-tensor.safetensors", safetensors(meta(), [x for x in t if x[0] != "net.l1.bias"]))
    put("unexpected-tensor.safetensors", safetensors(meta(), t + [("net.l9.weight", "F32", [2], f32([1, 2]))]))
    put("unexpected-tensor-newline.safetensors", safetensors(
        meta(), t + [("net.l9\nweight", "F32", [2], f32([1, 2]))]))
    put("no-tensors.safetensors", safetensors(meta(), []))
    put("deen-with-two-measurements.safetensors", safetensors(meta(measurements="2"), t))
    put("vae-without-latent.safetensors", safetensors(meta(kind="sigma_vae"), t))


def idx_images(count, rows, cols, pixels):
    return struct.pack(">IIII", 0x0803, count, rows, cols) + bytes(pixels)


def idx_labels(count, labels):
    return struct.pack(">II", 0x0801, count) + bytes(labels)


def gz(data):
    # mtime=0 and no file name: the same input always gives the same bytes.
    return gzip.compress(data, compresslevel=9, mtime=0)


def idx():
    px = [(i * 37) % 256 for i in range(3 * 16)]  # three 4x4 images
    labels = [3, 1, 4]
    put("valid-images.idx", idx_images(3, 4, 4, px))
    put("valid-images.idx.gz", gz(idx_images(3, 4, 4, px)))
    put("valid-labels.idx", idx_labels(3, labels))
    put("valid-labels.idx.gz", gz(idx_labels(3, labels)))
    # The header says 5 images, the file holds 3; the header says 2, the file holds 3.
    put("images-count-too-big.idx", idx_images(5, 4, 4, px))
    put("images-count-too-small.idx", idx_images(2, 4, 4, px))
    put("labels-count-too-big.idx", idx_labels(9, labels))
    put("labels-count-too-small.idx", idx_labels(1, labels))
    put("wrong-magic.idx", b"\x12\x34" + idx_images(3, 4, 4, px)[2:])
    put("float-images.idx", b"\x00\x00\x0d\x03" + idx_images(3, 4, 4, px)[4:])
    full = gz(idx_images(3, 4, 4, px))
    put("truncated.idx.gz", full[: len(full) // 2])
    # Gzip whose header claims 100 000 28x28 images (78 MB) but inflates to 3 of them.
    put("gzip-claims-more.idx.gz", gz(idx_images(100_000, 28, 28, [7] * (3 * 28 * 28))))
    put("zero-count.idx", idx_images(0, 4, 4, []))
    put("absurd-side.idx", idx_images(1, 100_000, 4, px))
    put("absurd-total.idx", idx_images(0xFFFFFFFF, 4096, 4096, px))
    put("empty.idx", b"")
    put("short-header.idx", idx_images(3, 4, 4, px)[:10])


def runs():
    spec = {"chain": {"sampler": {"kind": "cheng", "delta": 0.5, "gamma": 0.5, "u": 1.0}, "every": 10,
                      "chains": 4, "init": "uniform_noise", "seed": 7}, "steps": 100, "frames": 40}
    rec = {"program": "walkjump 0.1.0", "checkpoint_sha256": "0" * 64, "kind": "deen", "spec": spec}
    put("valid-run.json", json.dumps(rec, indent=2).encode())
    over = json.loads(json.dumps(rec))
    over["spec"]["chain"]["sampler"] = {"kind": "overdamped", "delta": 0.28}
    put("valid-run-overdamped.json", json.dumps(over, indent=2).encode())
    put("run-not-json.json", b"steps = 100\n")
    bad = json.loads(json.dumps(rec))
    bad["spec"]["chain"]["sampler"] = {"kind": "hmc", "delta": 0.5}
    put("run-unknown-sampler.json", json.dumps(bad).encode())
    bad = json.loads(json.dumps(rec))
    bad["spec"]["chain"]["sampler"] = {"kind": "cheng\nrm -rf /", "delta": 0.5}
    put("run-newline-sampler.json", json.dumps(bad).encode())
    bad = json.loads(json.dumps(rec))
    del bad["spec"]["steps"]
    put("run-missing-steps.json", json.dumps(bad).encode())
    bad = json.loads(json.dumps(rec))
    bad["spec"]["chain"]["chains"] = -4
    put("run-negative-chains.json", json.dumps(bad).encode())
    # Parses, but the chain is invalid: validate() must refuse it.
    bad = json.loads(json.dumps(rec))
    bad["spec"]["chain"]["sampler"]["delta"] = -1.0
    put("run-negative-delta.json", json.dumps(bad).encode())
    bad = json.loads(json.dumps(rec))
    bad["spec"]["chain"]["every"] = 0
    put("run-every-zero.json", json.dumps(bad).encode())
    bad = json.loads(json.dumps(rec))
    bad["spec"]["chain"]["sampler"]["gamma"] = 1e308
    put("run-huge-friction.json", json.dumps(bad).encode())
    bad = json.loads(json.dumps(rec))
    bad["spec"]["chain"]["chains"] = 1_000_000
    put("run-too-many-chains.json", json.dumps(bad).encode())


def main():
    checkpoints()
    idx()
    runs()
    keep = {"make.py", "README.md"}
    for old in os.listdir(HERE):
        if old not in keep and old not in FILES:
            os.remove(os.path.join(HERE, old))
    for name, blob in sorted(FILES.items()):
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(blob)
    print(f"wrote {len(FILES)} files to {HERE}")


if __name__ == "__main__":
    main()
