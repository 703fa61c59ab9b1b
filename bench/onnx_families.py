"""Ten network families that walkjump's old checkpoint format could not hold, exported from PyTorch to ONNX.

    bench/.venv/bin/python bench/onnx_families.py [OUT_DIR]      (default: tests/fixtures/onnx)
    bench/.venv/bin/python bench/onnx_families.py time --threads T --budget S --json OUT.json

For each family it writes
  NAME.onnx                    torch.onnx.export (the default exporter), with walkjump.role / sigma / shape in
                               the file's metadata_props, so `walkjump sample -c NAME.onnx` needs no flags;
  NAME.expected.safetensors    inputs y [4, d] and what PyTorch autograd says about them: the network's output,
                               the score, and the jump (see below), all float32.
The parity test (tests/onnx.rs) and `bench/compare.sh --onnx` check walkjump against these within 1e-4.

Roles, as walkjump reads them:
  energy    f(y) -> [N]        score = -grad f (autograd here),  jump = y - sigma^2 grad f
  denoiser  D(y) -> [N, ...]   score = (D(y) - y) / sigma^2,     jump = D(y)
  score     s(y) -> [N, ...]   score = s(y),                     jump = y + sigma^2 s(y)

`time` measures PyTorch eager on the same models (same seed, so the same weights) the way `walkjump bench`
measures the imported files: one walk-jump step of 64 chains with the sampler walkjump picks for them, rows in the
JSON format of bench/torch_reference.py (whose `ratios` joins the two). bench/compare.sh --onnx runs it all.

Exporting your own model is the same call as `export()` below: one input (the noisy batch), one output, a
dynamic batch dimension, then the three metadata entries.
"""

import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import save_file


class ResEnergy(nn.Module):
    """Residual energy on 1x28x28 with GroupNorm and Softplus, average pooling, a linear readout."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.n0 = nn.GroupNorm(4, 16)
        self.c1 = nn.Conv2d(16, 16, 3, padding=1)
        self.n1 = nn.GroupNorm(4, 16)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.c3 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.n3 = nn.GroupNorm(8, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, y):
        h = F.softplus(self.n0(self.stem(y)))
        h = h + self.c2(F.softplus(self.n1(self.c1(h))))
        h = self.pool(h)
        h = F.softplus(self.n3(self.c3(h)))
        h = h.mean(dim=(2, 3))
        return self.out(h).squeeze(-1)


class UNetDenoiser(nn.Module):
    """A small U-Net on 1x28x28: two levels, skip concatenations, nearest upsampling, SiLU."""

    def __init__(self):
        super().__init__()
        self.e1 = nn.Conv2d(1, 16, 3, padding=1)
        self.e2 = nn.Conv2d(16, 32, 3, padding=1)
        self.mid = nn.Conv2d(32, 32, 3, padding=1)
        self.d2 = nn.Conv2d(64, 32, 3, padding=1)
        self.d1 = nn.Conv2d(48, 16, 3, padding=1)
        self.out = nn.Conv2d(16, 1, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, y):
        a = F.silu(self.e1(y))  # 16 x 28
        b = F.silu(self.e2(F.avg_pool2d(a, 2)))  # 32 x 14
        m = F.silu(self.mid(F.avg_pool2d(b, 2)))  # 32 x 7
        u = F.silu(self.d2(torch.cat([self.up(m), b], 1)))  # 32 x 14
        u = F.silu(self.d1(torch.cat([self.up(u), a], 1)))  # 16 x 28
        return y + self.out(u)


class ColourEnergy(nn.Module):
    """A colour 3x32x32 conv energy: strided convolutions, BatchNorm (eval), LeakyReLU, ELU, GELU."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.c2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = nn.Linear(32 * 8 * 8, 64)
        self.out = nn.Linear(64, 1)

    def forward(self, y):
        h = F.leaky_relu(self.bn(self.c1(y)), 0.1)
        h = F.elu(self.c2(h))
        h = F.gelu(self.fc(torch.flatten(h, 1)))
        return self.out(h).squeeze(-1)


class ClassicUNetEnergy(nn.Module):
    """The classic U-Net's ops on 1x28x28, as an energy 0.5 ||y - U(y)||^2: max pooling down, transposed
    convolutions up (kernel 3 / stride 2 / padding 1 / output padding 1, and kernel 2 / stride 2), BatchNorm
    (eval), ReLU, skip concatenations."""

    def __init__(self):
        super().__init__()
        self.e1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.e2 = nn.Conv2d(8, 16, 3, padding=1)
        self.mid = nn.Conv2d(16, 16, 3, padding=1)
        self.up2 = nn.ConvTranspose2d(16, 16, 3, stride=2, padding=1, output_padding=1)
        self.d2 = nn.Conv2d(32, 16, 3, padding=1)
        self.up1 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.d1 = nn.Conv2d(16, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, y):
        a = F.relu(self.bn1(self.e1(y)))  # 8 x 28
        b = F.relu(self.e2(F.max_pool2d(a, 2)))  # 16 x 14
        m = F.relu(self.mid(F.max_pool2d(b, 2)))  # 16 x 7
        u = F.relu(self.d2(torch.cat([self.up2(m), b], 1)))  # 16 x 14
        u = F.relu(self.d1(torch.cat([self.up1(u), a], 1)))  # 8 x 28
        r = y - self.out(u)
        return 0.5 * (r * r).sum(dim=(1, 2, 3))


class BilinearScore(nn.Module):
    """A score net on 1x28x28 that enlarges by bilinear interpolation, PyTorch's align_corners false and true:
    strided convolutions down, GroupNorm, SiLU, a skip concatenation."""

    def __init__(self):
        super().__init__()
        self.d1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.n1 = nn.GroupNorm(2, 8)
        self.d2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.u2 = nn.Conv2d(16, 8, 3, padding=1)
        self.u1 = nn.Conv2d(16, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 1, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)

    def forward(self, y):
        a = F.silu(self.n1(self.d1(y)))  # 8 x 14
        b = F.silu(self.d2(a))  # 16 x 7
        u = F.silu(self.u2(F.interpolate(b, scale_factor=2, mode="bilinear", align_corners=False)))  # 8 x 14
        u = F.silu(self.u1(torch.cat([u, a], 1)))  # 8 x 14
        return self.out(self.up(u))  # 1 x 28


class ActivationsEnergy(nn.Module):
    """A conv energy through the activations of mobile and self-normalising nets: Hardswish, ReLU6 (Clip),
    Hardsigmoid, PixelShuffle (DepthToSpace), PReLU (per channel and single), SELU, CELU, Softsign, abs; a
    depthwise and a two-group convolution."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 5, padding=2, groups=8)
        self.pr2 = nn.PReLU(2, init=0.1)
        self.c3 = nn.Conv2d(2, 8, 3, stride=4, padding=1, groups=2)
        self.fc = nn.Linear(8 * 7 * 7, 32)
        self.pr = nn.PReLU(init=-0.2)
        self.out = nn.Linear(32, 1)

    def forward(self, y):
        h = F.hardswish(self.c1(y))  # 8 x 14
        h = F.relu6(3 * self.c2(h)) * F.hardsigmoid(h)
        h = self.pr2(F.pixel_shuffle(h, 2) - 0.5)  # 2 x 28
        h = F.selu(self.c3(h))  # 8 x 7
        h = F.celu(self.pr(self.fc(torch.flatten(h, 1))), alpha=0.7)
        h = F.softsign(h) + 0.1 * torch.abs(h)
        return self.out(h).squeeze(-1)


class StemEnergy(nn.Module):
    """A ResNet-style stem and the paddings PyTorch models use, as a conv energy on 1x28x28: a 7x7 stride-2
    convolution, BatchNorm (eval), overlapping max pooling (3 / 2 / 1 and 2 / 1), reflect and replicate padding, an
    even kernel with padding "same" (uneven), a constant pad of 0.5 on two sides."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 7, stride=2, padding=3)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")
        self.c3 = nn.Conv2d(8, 8, 3)
        self.c4 = nn.Conv2d(8, 8, 4, padding="same")
        self.c5 = nn.Conv2d(8, 16, 3, stride=2)
        self.fc = nn.Linear(16 * 3 * 3, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, y):
        h = F.max_pool2d(F.relu(self.bn(self.c1(y))), 3, stride=2, padding=1)  # 8 x 7
        h = F.relu(self.c2(h))
        h = F.silu(self.c3(F.pad(h, (1, 1, 1, 1), mode="replicate")))  # 8 x 7
        h = torch.tanh(self.c4(h))
        h = self.c5(F.pad(h, (0, 2, 1, 1), value=0.5))  # 8 x 9 x 9 -> 16 x 4 x 4
        h = F.max_pool2d(h, 2, stride=1)  # 16 x 3
        h = F.softplus(self.fc(torch.flatten(h, 1)))
        return self.out(h).squeeze(-1)


class AttentionEnergy(nn.Module):
    """A conv energy with the attention blocks of diffusion U-Nets, at 14x14 and 7x7: GroupNorm, queries, keys and
    values from 1x1 convolutions (one split into three, and three separate ones with fewer value channels), two
    heads through scaled_dot_product_attention and one head written out as softmax(q^T k / sqrt(d)) v, a 1x1
    projection added back."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3, stride=2, padding=1)
        self.n1 = nn.GroupNorm(4, 16)
        self.qkv1 = nn.Conv2d(16, 48, 1)
        self.p1 = nn.Conv2d(16, 16, 1)
        self.c2 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.n2 = nn.GroupNorm(4, 16)
        self.q2 = nn.Conv2d(16, 16, 1)
        self.k2 = nn.Conv2d(16, 16, 1)
        self.v2 = nn.Conv2d(16, 8, 1)
        self.p2 = nn.Conv2d(8, 16, 1)
        self.fc = nn.Linear(16 * 7 * 7, 32)
        self.out = nn.Linear(32, 1)

    def forward(self, y):
        h = F.silu(self.c1(y))  # 16 x 14
        b, c, hh, ww = h.shape
        q, k, v = self.qkv1(self.n1(h)).chunk(3, dim=1)
        heads = lambda t: t.reshape(b, 2, t.shape[1] // 2, hh * ww).transpose(-1, -2)
        o = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        h = h + self.p1(o.transpose(-1, -2).reshape(b, c, hh, ww))
        h = F.silu(self.c2(h))  # 16 x 7
        b, c, hh, ww = h.shape
        g = self.n2(h)
        q, k, v = (m(g).reshape(b, -1, hh * ww) for m in (self.q2, self.k2, self.v2))
        a = torch.softmax(q.transpose(1, 2) @ k / 4.0, dim=-1)
        h = h + self.p2((v @ a.transpose(1, 2)).reshape(b, 8, hh, ww))
        h = F.softplus(self.fc(torch.flatten(h, 1)))
        return self.out(h).squeeze(-1)


class DilatedScore(nn.Module):
    """A score net in the manner of NCSN's RefineNet on 1x28x28: residual blocks of InstanceNorm, ELU and dilated
    convolutions (dilation 2 and 4), then chained residual pooling (5x5 max pooling, then 5x5 average pooling as in
    NCSNv2, at stride 1 with padding 2), and a 3x3 average pool that counts only the pixels it covers."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(1, 16, 3, padding=1)
        self.n1 = nn.InstanceNorm2d(16, affine=True)
        self.d1 = nn.Conv2d(16, 16, 3, padding=2, dilation=2)
        self.n2 = nn.InstanceNorm2d(16, affine=True)
        self.d2 = nn.Conv2d(16, 16, 3, padding=4, dilation=4)
        self.crp = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.out = nn.Conv2d(16, 1, 3, padding=1)

    def forward(self, y):
        h = self.c0(y)
        h = h + self.d1(F.elu(self.n1(h)))
        h = h + self.d2(F.elu(self.n2(h)))
        x = F.elu(h)
        p = x
        for pool in (F.max_pool2d, F.avg_pool2d):
            p = self.crp(pool(p, 5, stride=1, padding=2))
            x = x + p
        return self.out(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))


class MlpScore(nn.Module):
    """An MLP score net on flat 784 inputs: Tanh, tanh-GELU, LayerNorm."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(784, 256)
        self.l2 = nn.Linear(256, 256)
        self.norm = nn.LayerNorm(256)
        self.l3 = nn.Linear(256, 784)

    def forward(self, y):
        h = torch.tanh(self.l1(y))
        h = self.norm(F.gelu(self.l2(h), approximate="tanh"))
        return self.l3(h)


FAMILIES = [
    # name, module, role, sigma, per-sample input shape, data shape c,h,w
    ("res_energy", ResEnergy, "energy", 1.0, (1, 28, 28), "1,28,28"),
    ("unet_denoiser", UNetDenoiser, "denoiser", 0.5, (1, 28, 28), "1,28,28"),
    ("colour_energy", ColourEnergy, "energy", 0.3, (3, 32, 32), "3,32,32"),
    ("mlp_score", MlpScore, "score", 1.0, (784,), "1,28,28"),
    ("unet_classic_energy", ClassicUNetEnergy, "energy", 1.0, (1, 28, 28), "1,28,28"),
    ("bilinear_score", BilinearScore, "score", 1.0, (1, 28, 28), "1,28,28"),
    ("activations_energy", ActivationsEnergy, "energy", 1.0, (1, 28, 28), "1,28,28"),
    ("stem_energy", StemEnergy, "energy", 1.0, (1, 28, 28), "1,28,28"),
    ("attention_energy", AttentionEnergy, "energy", 1.0, (1, 28, 28), "1,28,28"),
    ("dilated_score", DilatedScore, "score", 1.0, (1, 28, 28), "1,28,28"),
]


# Families also exported with the older TorchScript exporter (dynamo=False, opset 17), whose graphs differ: GELU
# as Div/Erf/Add/Mul, Flatten, Reshape with Constant shapes, GroupNorm through Constant-shaped Reshapes, F.pad's
# pads computed with ConstantOfShape / Slice (step -1) / Transpose, chunk as Slice with integer shape arithmetic.
LEGACY = ["res_energy", "colour_energy", "stem_energy", "attention_energy"]


def export(model, example, path, role, sigma, shape, legacy=False):
    """One call: the dynamo exporter with a dynamic batch (or the legacy one), then walkjump's metadata."""
    if legacy:
        torch.onnx.export(
            model,
            (example,),
            path,
            input_names=["y"],
            output_names=["out"],
            dynamic_axes={"y": {0: "batch"}, "out": {0: "batch"}},
            dynamo=False,
            opset_version=17,
        )
    else:
        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.onnx.export(
            model,
            (example,),
            path,
            input_names=["y"],
            output_names=["out"],
            dynamic_shapes={"y": {0: batch}},
            external_data=False,
        )
    m = onnx.load(path)
    onnx.helper.set_model_props(
        m, {"walkjump.role": role, "walkjump.sigma": str(sigma), "walkjump.shape": shape}
    )
    onnx.save(m, path)


def expected(model, role, sigma, y):
    """PyTorch autograd's output, score and jump for the batch y."""
    y = y.clone().requires_grad_(role == "energy")
    out = model(y)
    if role == "energy":
        (grad,) = torch.autograd.grad(out.sum(), y)
        score = -grad
        jump = y - sigma**2 * grad
    elif role == "denoiser":
        score = (out - y) / sigma**2
        jump = out
    else:
        score = out
        jump = y + sigma**2 * out
    flat = lambda t: t.detach().reshape(t.shape[0], -1).numpy().astype(np.float32)
    return {"y": flat(y), "out": flat(out.reshape(y.shape[0], -1)), "score": flat(score), "jump": flat(jump)}


def built_models():
    """The ten models with the weights the export writes (same seed, same order)."""
    torch.manual_seed(0)
    for name, cls, role, sigma, in_shape, shape in FAMILIES:
        model = cls().eval()
        with torch.no_grad():
            # Non-trivial normalisation statistics and scales, so that the import must carry them.
            for mod in model.modules():
                if isinstance(mod, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.InstanceNorm2d)):
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.3, 0.3)
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.2, 0.2)
                    mod.running_var.uniform_(0.5, 2.0)
        yield name, model, role, sigma, in_shape, shape


def export_all(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, model, role, sigma, in_shape, shape in built_models():
        gen = torch.Generator().manual_seed(1)
        y = torch.rand((4,) + in_shape, generator=gen) + sigma * torch.randn((4,) + in_shape, generator=gen)
        path = os.path.join(out_dir, f"{name}.onnx")
        export(model, y[:2], path, role, sigma, shape)
        if name in LEGACY:
            export(model, y[:2], os.path.join(out_dir, f"{name}_legacy.onnx"), role, sigma, shape, legacy=True)
        save_file(expected(model, role, sigma, y), os.path.join(out_dir, f"{name}.expected.safetensors"))
        ops = sorted({n.op_type for n in onnx.load(path).graph.node})
        print(f"{name}: {os.path.getsize(path)} bytes, ops {', '.join(ops)}")


def time_all(threads, budget, json_path):
    """PyTorch eager walk-jump steps at 64 chains on each family (rows like `walkjump bench --json`)."""
    import json
    import math

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_reference as ref

    torch.set_num_threads(threads)
    rows = []
    for name, model, role, sigma, in_shape, shape in built_models():
        model.requires_grad_(False)
        dim = int(np.prod(in_shape))

        def score(y, model=model, role=role, sigma=sigma, in_shape=in_shape):
            y4 = y.reshape((y.shape[0],) + in_shape)
            if role == "energy":
                with torch.enable_grad():
                    y4 = y4.detach().requires_grad_(True)
                    (g,) = torch.autograd.grad(model(y4).sum(), y4)
                return -g.reshape(y.shape[0], -1)
            with torch.no_grad():
                out = model(y4).reshape(y.shape[0], -1)
            return (out - y) / sigma**2 if role == "denoiser" else out

        class Twin:
            pass

        twin = Twin()
        twin.dim = dim
        twin.score = score
        # walkjump's default for an imported model of M = 1 (run::recommended_sampler).
        sampler = {"kind": "overdamped", "delta": math.sqrt(2) * 0.2 * sigma}
        rows.append(ref.row(name, "walk-jump step", 64, ref.time_median(budget, ref.walk_jump_stepper(twin, sampler, 64))))
        print(f"{name:<16} walk-jump step  64 {rows[-1]['ms']:9.3f} ms", file=sys.stderr)
    report = {
        "device": f"cpu, torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "gemm_gflops": ref.gemm_peak(budget),
        "rows": rows,
    }
    with open(json_path, "w") as f:
        json.dump(report, f, indent=2)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "time":
        import argparse

        p = argparse.ArgumentParser()
        p.add_argument("cmd")
        p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
        p.add_argument("--budget", type=float, default=1.0)
        p.add_argument("--json", required=True)
        a = p.parse_args()
        time_all(a.threads, a.budget, a.json)
        return
    export_all(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/onnx")


if __name__ == "__main__":
    main()
