"""Four network families that walkjump's old checkpoint format could not hold, exported from PyTorch to ONNX.

    bench/.venv/bin/python bench/onnx_families.py [OUT_DIR]      (default: tests/fixtures/onnx)

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
]


def export(model, example, path, role, sigma, shape):
    """One call: the dynamo exporter with a dynamic batch, then walkjump's metadata."""
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


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/onnx"
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    for name, cls, role, sigma, in_shape, shape in FAMILIES:
        model = cls().eval()
        with torch.no_grad():
            # Non-trivial normalisation statistics and scales, so that the import must carry them.
            for mod in model.modules():
                if isinstance(mod, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d)):
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.3, 0.3)
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.2, 0.2)
                    mod.running_var.uniform_(0.5, 2.0)
        gen = torch.Generator().manual_seed(1)
        y = torch.rand((4,) + in_shape, generator=gen) + sigma * torch.randn((4,) + in_shape, generator=gen)
        path = os.path.join(out_dir, f"{name}.onnx")
        export(model, y[:2], path, role, sigma, shape)
        save_file(expected(model, role, sigma, y), os.path.join(out_dir, f"{name}.expected.safetensors"))
        ops = sorted({n.op_type for n in onnx.load(path).graph.node})
        print(f"{name}: {os.path.getsize(path)} bytes, ops {', '.join(ops)}")


if __name__ == "__main__":
    main()
