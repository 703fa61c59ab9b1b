#!/usr/bin/env python3
"""PyTorch twin of every walkjump architecture, for parity checks and speed comparisons.

The twin classes below are the reference for the checkpoint format seen from PyTorch: their ``state_dict`` keys and
shapes are exactly walkjump's tensor names (``net.l0.weight``, ``enc_mu.l1.bias``, ``prior.w``, ...), so a model
built from them loads a walkjump ``.safetensors`` file with ``load_state_dict(strict=True)`` and exports to one with
:func:`save_walkjump`.

Modes:

``parity``  computes energy, score and jump (z = mean for the latent-variable kinds) of each checkpoint on fixed
            inputs, with the score from ``torch.autograd.grad``, and compares them with ``walkjump probe``.
``time``    times a walk-jump step, a NEBULA step, a denoising pass and a training step like ``walkjump bench`` and
            writes JSON rows of the same shape (model, op, batch, ms, per_sec); ``--device cuda`` times on the GPU
            (every timed call ends with ``torch.cuda.synchronize()``).
``ratios``  joins a ``walkjump bench --json`` file and a ``time --json`` file: PyTorch ms / walkjump ms per row.
``export-examples``  writes random twins of every kind (conv and MLP nets) as walkjump checkpoints, which the
            parity check then covers too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

DATA_SCALE = 0.225  # MDAE input scaling 1 / sqrt(DATA_SCALE^2 + sigma^2) (src/models/kinds/mdae.rs)
LAMBDA_MAX = 30.0  # log-variance clamp of the encoders (src/models/vae.rs)
KINDS = ("deen", "uvb", "sigma_vae", "alpha_vae", "vae", "mdae", "ebm_vae", "classifier")


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint metadata


@dataclass
class Meta:
    """The walkjump metadata of a checkpoint (README "Checkpoint format")."""

    kind: str
    sigma: float
    measurements: int
    data: dict
    arch: dict
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.data["channels"]), int(self.data["height"]), int(self.data["width"]))

    @property
    def data_dim(self) -> int:
        c, h, w = self.shape
        return c * h * w

    @classmethod
    def read(cls, path: Path) -> Meta:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
        if md.get("format") != "walkjump":
            raise ValueError(f"{path}: not a walkjump checkpoint (metadata format = {md.get('format')!r})")
        kind = md["kind"]
        if kind not in KINDS:
            raise ValueError(f"{path}: unknown kind {kind!r}")
        reserved = {"format", "version", "kind", "sigma", "measurements", "data", "arch", "train"}
        return cls(
            kind=kind,
            sigma=float(md["sigma"]),
            measurements=int(md["measurements"]),
            data=json.loads(md["data"]),
            arch=json.loads(md["arch"]),
            extra={k: v for k, v in md.items() if k not in reserved},
        )


# ----------------------------------------------------------------------------------------------------------------
# Networks (src/nn/mod.rs)


class Net(nn.Module):
    """SiLU network ``R^{c*h*w} -> R^out`` with layers ``l0, l1, ...``: SiLU after every layer but the linear readout.

    ``cfg`` is walkjump's ``NetConfig`` JSON: ``{"type": "mlp", "hidden": [...]}`` or
    ``{"type": "conv", "channels": [...], "strides": [...], "kernel": k, "fc": [...]}`` (padding ``k // 2``). Inputs are
    flat ``[N, c*h*w]``; conv nets reshape them to ``[N, c, h, w]`` and flatten again before the first linear layer.
    """

    def __init__(self, cfg: dict, in_shape: tuple[int, int, int], out_dim: int) -> None:
        super().__init__()
        self.in_shape = in_shape
        layers: list[nn.Module] = []
        c, h, w = in_shape
        if cfg["type"] == "mlp":
            flat = c * h * w
            fc = cfg["hidden"]
        elif cfg["type"] == "conv":
            k = int(cfg["kernel"])
            for ch, stride in zip(cfg["channels"], cfg["strides"], strict=True):
                layers.append(nn.Conv2d(c, ch, k, stride=stride, padding=k // 2))
                h = (h + 2 * (k // 2) - k) // stride + 1
                w = (w + 2 * (k // 2) - k) // stride + 1
                c = ch
            flat = c * h * w
            fc = cfg["fc"]
        else:
            raise ValueError(f"unknown net type {cfg['type']!r}")
        for width in fc:
            layers.append(nn.Linear(flat, width))
            flat = width
        layers.append(nn.Linear(flat, out_dim))
        for i, layer in enumerate(layers):
            self.add_module(f"l{i}", layer)
        self.depth = len(layers)

    def forward(self, x: Tensor) -> Tensor:
        a = x
        for i in range(self.depth):
            layer = getattr(self, f"l{i}")
            if isinstance(layer, nn.Conv2d) and a.dim() == 2:
                a = a.reshape(a.shape[0], *self.in_shape)
            elif isinstance(layer, nn.Linear) and a.dim() != 2:
                a = a.flatten(1)
            a = layer(a)
            if i < self.depth - 1:
                a = F.silu(a)
        return a


class GraphNet(nn.Module):
    """walkjump's layer graph (``{"type": "graph", "nodes": [...]}``, src/nn/graph.rs) in PyTorch, channels-first.

    Value 0 is the input (``[N, d]`` flat, or ``[N, c, h, w]`` for an image input), value ``i + 1`` the output of
    node ``i``; the last value, flattened, is the output. Each named node keeps its tensors under ``{name}.weight``,
    ``{name}.bias`` (and ``running_mean`` / ``running_var`` for batch norm), so the checkpoint's state_dict loads as
    is. Shapes are inferred here as in ``Graph::new``, so that the parameters exist before loading.
    """

    ACTS = {
        "silu": lambda x, o: F.silu(x),
        "relu": lambda x, o: F.relu(x),
        "leaky_relu": lambda x, o: F.leaky_relu(x, o.get("alpha", 0.01)),
        "elu": lambda x, o: F.elu(x, o.get("alpha", 1.0)),
        "gelu": lambda x, o: F.gelu(x, approximate="tanh" if o.get("tanh") else "none"),
        # walkjump's softplus has no linear threshold: log(1 + exp(beta x)) / beta exactly.
        "softplus": lambda x, o: torch.logaddexp(o.get("beta", 1.0) * x, torch.zeros_like(x)) / o.get("beta", 1.0),
        "tanh": lambda x, o: torch.tanh(x),
        "sigmoid": lambda x, o: torch.sigmoid(x),
        "erf": lambda x, o: torch.erf(x),
        # The ops of walkjump's op registry (src/nn/graph/ops/), one entry each.
        "mish": lambda x, o: x * torch.tanh(torch.logaddexp(x, torch.zeros_like(x))),
        "hard_sigmoid": lambda x, o: torch.clamp(o.get("alpha", 0.2) * x + o.get("beta", 0.5), 0.0, 1.0),
        "hard_swish": lambda x, o: F.hardswish(x),
        "selu": lambda x, o: o.get("gamma", 1.0507009873554805)
        * torch.where(x > 0, x, o.get("alpha", 1.6732632423543772) * torch.expm1(torch.clamp(x, max=0.0))),
        "celu": lambda x, o: F.celu(x, o.get("alpha", 1.0)),
        "softsign": lambda x, o: F.softsign(x),
        "abs": lambda x, o: torch.abs(x),
        "clip": lambda x, o: torch.clamp(x, o.get("min", -3.4028234663852886e38), o.get("max", 3.4028234663852886e38)),
        "exp": lambda x, o: torch.exp(x),
        "log": lambda x, o: torch.log(x),
        "sqrt": lambda x, o: torch.sqrt(x),
        "reciprocal": lambda x, o: torch.reciprocal(x),
    }

    def __init__(self, cfg: dict, in_shape: tuple[int, int, int], out_dim: int) -> None:
        super().__init__()
        self.nodes = cfg["nodes"]
        dims = cfg.get("input") or list(in_shape)
        self.input = tuple(int(v) for v in dims)
        shapes = [self.input]
        for node in self.nodes:
            op, ins = node["op"], [shapes[v] for v in node["in"]]
            x = ins[0]
            params: dict[str, list[int]] = {}
            if op == "linear":
                out = (node["out"],)
                params = {"weight": [node["out"], x[0]]}
                if node.get("bias", True):
                    params["bias"] = [node["out"]]
            elif op == "conv2d":
                k, s, p = node["kernel"], node.get("stride", 1), node.get("padding", 0)
                c, h, w = x
                out = (node["out"], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
                params = {"weight": [node["out"], c, k, k]}
                if node.get("bias", True):
                    params["bias"] = [node["out"]]
            elif op == "concat":
                out = (sum(s[0] for s in ins),) + tuple(x[1:])
            elif op == "flatten":
                out = (int(math.prod(x)),)
            elif op == "unflatten":
                out = tuple(node["shape"])
            elif op == "upsample":
                out = (x[0], x[1] * node["scale"], x[2] * node["scale"])
            elif op == "upsample_bilinear":
                out = (x[0], x[1] * node["scale"], x[2] * node["scale"])
            elif op == "pixel_shuffle":
                r = node["factor"]
                out = (x[0] // (r * r), x[1] * r, x[2] * r)
            elif op == "avg_pool":
                out = (x[0], x[1] // node["kernel"], x[2] // node["kernel"])
            elif op in ("max_pool", "avg_pool2d"):
                k, p = node["kernel"], node.get("padding", 0)
                s = node.get("stride", k)
                out = (x[0], (x[1] + 2 * p - k) // s + 1, (x[2] + 2 * p - k) // s + 1)
            elif op == "attention":
                out = ins[2]
            elif op == "slice_channels":
                out = (node["len"],) + tuple(x[1:])
            elif op == "pad2d":
                t, b, l, r = (node.get(side, 0) for side in ("top", "bottom", "left", "right"))
                out = (x[0], x[1] + t + b, x[2] + l + r)
            elif op == "conv2d_grouped":
                k, s, p = node["kernel"], node.get("stride", 1), node.get("padding", 0)
                c, h, w = x
                span = node.get("dilation", 1) * (k - 1) + 1
                out = (node["out"], (h + 2 * p - span) // s + 1, (w + 2 * p - span) // s + 1)
                params = {"weight": [node["out"], c // node["groups"], k, k]}
                if node.get("bias", True):
                    params["bias"] = [node["out"]]
            elif op == "conv_transpose2d":
                k, s, p = node["kernel"], node.get("stride", 1), node.get("padding", 0)
                op_ = node.get("output_padding", 0)
                c, h, w = x
                out = (node["out"], (h - 1) * s - 2 * p + k + op_, (w - 1) * s - 2 * p + k + op_)
                params = {"weight": [c, node["out"], k, k]}
                if node.get("bias", True):
                    params["bias"] = [node["out"]]
            elif op == "global_avg_pool":
                out = (x[0], 1, 1)
            elif op in ("reduce_sum", "reduce_mean"):
                out = (1,)
            else:
                out = x
                c = x[0]
                if op in ("group_norm", "layer_norm", "batch_norm"):
                    params = {"weight": [c], "bias": [c]}
                    if op == "batch_norm":
                        params.update({"running_mean": [c], "running_var": [c]})
                elif op in ("channel_mul", "prelu"):
                    params = {"weight": [c]}
                elif op == "channel_add":
                    params = {"bias": [c]}
            if params:
                holder = self
                for part in node["name"].split("."):
                    if not hasattr(holder, part):
                        holder.add_module(part, nn.Module())
                    holder = getattr(holder, part)
                for key, shape in params.items():
                    t = torch.zeros(shape)
                    if key.startswith("running"):
                        holder.register_buffer(key, t)
                    else:
                        holder.register_parameter(key, nn.Parameter(t))
            shapes.append(out)
        if int(math.prod(shapes[-1])) != out_dim:
            raise ValueError(f"the graph gives {shapes[-1]}, the model needs {out_dim} values")

    def _p(self, node: dict, key: str) -> Tensor:
        holder = self
        for part in node["name"].split("."):
            holder = getattr(holder, part)
        return getattr(holder, key)

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        values = [x.reshape(n, *self.input)]
        for node in self.nodes:
            op, a = node["op"], [values[v] for v in node["in"]]
            x = a[0]

            def per_channel(v: Tensor, x: Tensor = x) -> Tensor:
                return v.reshape(1, -1, 1, 1) if x.dim() == 4 else v.reshape(1, -1)

            bias = (lambda: self._p(node, "bias")) if node.get("bias", True) else (lambda: None)
            if op == "linear":
                y = F.linear(x, self._p(node, "weight"), bias())
            elif op == "conv2d":
                y = F.conv2d(x, self._p(node, "weight"), bias(), node.get("stride", 1), node.get("padding", 0))
            elif op in self.ACTS:
                y = self.ACTS[op](x, node)
            elif op == "add":
                y = a[0] + a[1]
            elif op == "sub":
                y = a[0] - a[1]
            elif op == "mul":
                y = a[0] * a[1]
            elif op == "div":
                y = a[0] / a[1]
            elif op == "slice_channels":
                y = x.narrow(1, node["start"], node["len"])
            elif op == "avg_pool2d":
                k = node["kernel"]
                y = F.avg_pool2d(
                    x, k, node.get("stride", k), node.get("padding", 0), count_include_pad=node.get("count_include_pad", True)
                )
            elif op == "attention":
                heads = node.get("heads", 1)
                _, c, h, w = a[0].shape
                scale = node.get("scale", 1.0 / math.sqrt(c // heads))
                q, k, v = (t.reshape(n, heads, t.shape[1] // heads, h * w) for t in a)
                p = torch.softmax(scale * q.transpose(2, 3) @ k, dim=-1)
                y = (v @ p.transpose(2, 3)).reshape(n, -1, h, w)
            elif op == "concat":
                y = torch.cat(a, dim=1)
            elif op == "flatten":
                y = x.flatten(1)
            elif op == "unflatten":
                y = x.reshape(n, *node["shape"])
            elif op == "upsample":
                y = F.interpolate(x, scale_factor=node["scale"], mode="nearest")
            elif op == "avg_pool":
                y = F.avg_pool2d(x, node["kernel"])
            elif op == "max_pool":
                k = node["kernel"]
                y = F.max_pool2d(x, k, node.get("stride", k), node.get("padding", 0))
            elif op == "pad2d":
                sides = tuple(node.get(side, 0) for side in ("left", "right", "top", "bottom"))
                mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[node.get("mode", "constant")]
                if mode == "constant":
                    y = F.pad(x, sides, value=node.get("value", 0.0))
                else:
                    y = F.pad(x, sides, mode=mode)
            elif op == "conv2d_grouped":
                y = F.conv2d(
                    x,
                    self._p(node, "weight"),
                    bias(),
                    node.get("stride", 1),
                    node.get("padding", 0),
                    node.get("dilation", 1),
                    node["groups"],
                )
            elif op == "prelu":
                y = torch.where(x > 0, x, per_channel(self._p(node, "weight")) * x)
            elif op == "pixel_shuffle":
                r = node["factor"]
                if node.get("mode", "crd") == "crd":
                    y = F.pixel_shuffle(x, r)
                else:
                    _, c4, h, w = x.shape
                    c = c4 // (r * r)
                    y = x.reshape(n, r, r, c, h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c, h * r, w * r)
            elif op == "upsample_bilinear":
                y = F.interpolate(
                    x, scale_factor=node["scale"], mode="bilinear", align_corners=node.get("align_corners", False)
                )
            elif op == "conv_transpose2d":
                y = F.conv_transpose2d(
                    x,
                    self._p(node, "weight"),
                    bias(),
                    node.get("stride", 1),
                    node.get("padding", 0),
                    node.get("output_padding", 0),
                )
            elif op == "global_avg_pool":
                y = x.mean((2, 3), keepdim=True)
            elif op == "group_norm":
                y = F.group_norm(x, node["groups"], self._p(node, "weight"), self._p(node, "bias"), node.get("eps", 1e-5))
            elif op == "layer_norm":
                y = F.layer_norm(x, x.shape[1:], self._p(node, "weight"), self._p(node, "bias"), node.get("eps", 1e-5))
            elif op == "batch_norm":
                y = F.batch_norm(
                    x, self._p(node, "running_mean"), self._p(node, "running_var"), self._p(node, "weight"),
                    self._p(node, "bias"), training=False, eps=node.get("eps", 1e-5),
                )
            elif op == "channel_mul":
                y = x * per_channel(self._p(node, "weight"))
            elif op == "channel_add":
                y = x + per_channel(self._p(node, "bias"))
            elif op == "affine":
                y = x * node.get("mul", 1.0) + node.get("add", 0.0)
            elif op == "reduce_sum":
                y = x.flatten(1).sum(1, keepdim=True)
            elif op == "reduce_mean":
                y = x.flatten(1).mean(1, keepdim=True)
            else:
                raise ValueError(f"unknown graph op {op!r}")
            values.append(y)
        return values[-1].flatten(1)


def make_net(cfg: dict, in_shape: tuple[int, int, int], out_dim: int) -> nn.Module:
    """The twin of ``NetConfig``: the layer graph for ``graph``, the SiLU chain for ``mlp`` / ``conv``."""
    if cfg["type"] == "graph":
        return GraphNet(cfg, in_shape, out_dim)
    return Net(cfg, in_shape, out_dim)


# ----------------------------------------------------------------------------------------------------------------
# Model kinds (src/models)


class WalkJumpModel(nn.Module):
    """Common interface: ``energy`` (where defined), ``score``, ``jump`` on ``y: [N, M*d]``, and the training ``loss``."""

    has_energy = False
    has_score = False
    is_denoiser = True

    def __init__(self, meta: Meta) -> None:
        super().__init__()
        self.meta = meta
        self.sigma = meta.sigma
        self.measurements = meta.measurements
        self.data_dim = meta.data_dim
        #: how UVB and the VAEs pick z: "mean" (deterministic, for parity) or "sample" (walkjump's default)
        self.z_mode = "sample"

    @property
    def dim(self) -> int:
        return self.measurements * self.data_dim

    def energy(self, y: Tensor) -> Tensor:
        raise NotImplementedError(f"a {self.meta.kind} model has no energy")

    def energy_and_score(self, y: Tensor, create_graph: bool = False) -> tuple[Tensor | None, Tensor]:
        """``(f(y) [N], score = -grad_y f [N, M*d])`` by ``torch.autograd.grad``."""
        with torch.enable_grad():
            y = y if create_graph else y.detach().requires_grad_(True)
            f = self.energy(y)
            (g,) = torch.autograd.grad(f.sum(), y, create_graph=create_graph)
        return (f if create_graph else f.detach()), -g

    def score(self, y: Tensor) -> Tensor:
        return self.energy_and_score(y)[1]

    def jump(self, y: Tensor) -> Tensor:
        """Empirical-Bayes estimate ``x_hat(y) = y + sigma^2 score(y)`` (overridden where the kind differs)."""
        return y + self.sigma**2 * self.score(y)

    def probe(self, y: Tensor) -> dict[str, Tensor]:
        """What ``walkjump probe`` writes for this kind."""
        out: dict[str, Tensor] = {}
        if self.has_score:
            f, s = self.energy_and_score(y) if self.has_energy else (None, self.score(y))
            if f is not None:
                out["energy"] = f
            out["score"] = s
        out["jump"] = self.jump(y)
        return {k: v.detach() for k, v in out.items()}

    def loss(self, x: Tensor, labels: Tensor | None) -> Tensor:
        """Training objective on clean ``x: [B, d]`` (src/train/mod.rs ``batch_loss``)."""
        raise NotImplementedError


class Deen(WalkJumpModel):
    """``f(y) = net(y) (+ ||y||^2 / (2 sigma^2) with arch.quadratic)``; jump ``y - sigma^2 grad f``."""

    has_energy = True
    has_score = True

    def __init__(self, meta: Meta) -> None:
        super().__init__(meta)
        self.quadratic = bool(meta.arch.get("quadratic", False))
        self.net = make_net(meta.arch["net"], meta.shape, 1)

    def energy(self, y: Tensor) -> Tensor:
        f = self.net(y).squeeze(-1)
        if self.quadratic:
            f = f + (y * y).sum(-1) / (2 * self.sigma**2)
        return f

    def jump(self, y: Tensor, create_graph: bool = False) -> Tensor:
        s2 = self.sigma**2
        if not self.quadratic:
            return y + s2 * self.energy_and_score(y, create_graph)[1]
        # y - sigma^2 (grad net + y / sigma^2) = -sigma^2 grad net, without the cancellation (as walkjump).
        with torch.enable_grad():
            yy = y if create_graph else y.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.net(yy).sum(), yy, create_graph=create_graph)
        return -s2 * g

    def loss(self, x: Tensor, labels: Tensor | None) -> Tensor:
        y = (x + self.sigma * torch.randn_like(x)).requires_grad_(True)
        return ((x - self.jump(y, create_graph=True)) ** 2).sum(-1).mean()


class Mdae(WalkJumpModel):
    """``nu(y) = net(y / sqrt(0.225^2 + sigma^2))``, score ``(nu - y) / sigma^2``, jump ``mean_m nu_m(y)``."""

    has_score = True

    def __init__(self, meta: Meta) -> None:
        super().__init__(meta)
        c, h, w = meta.shape
        m = meta.measurements
        self.net = make_net(meta.arch["net"], (m * c, h, w), m * c * h * w)

    def nu(self, y: Tensor) -> Tensor:
        if self.meta.arch.get("raw_input"):
            # Imported denoisers and score nets take y as it is.
            return self.net(y)
        return self.net(y / math.sqrt(DATA_SCALE**2 + self.sigma**2))

    def score(self, y: Tensor) -> Tensor:
        return (self.nu(y) - y) / self.sigma**2

    def jump(self, y: Tensor) -> Tensor:
        return self.nu(y).reshape(y.shape[0], self.measurements, self.data_dim).mean(1)

    def loss(self, x: Tensor, labels: Tensor | None) -> Tensor:
        xt = x.repeat(1, self.measurements)
        y = xt + self.sigma * torch.randn_like(xt)
        return ((xt - self.nu(y)) ** 2).sum(-1).mean() / self.measurements


def kl_standard_normal(mu: Tensor, lam: Tensor) -> Tensor:
    """Per-sample ``KL(N(mu, exp(lam)) || N(0, I))``."""
    return 0.5 * (mu * mu + lam.exp() - lam - 1).sum(-1)


class LatentVae(WalkJumpModel):
    """Encoders ``enc_mu``, ``enc_lam`` (log-variance, clamped to [-30, 30]) and MLP decoder ``dec`` (sigmoid readout).

    Kinds ``sigma_vae`` (Gaussian decoder, imaginary noise sigma), ``alpha_vae`` (Laplace, scale arch.alpha) and
    ``vae`` (Bernoulli): the jump is ``sigmoid(dec(z))`` with ``z ~ q(z|y)`` (or ``z = mu`` in mean mode).
    """

    def __init__(self, meta: Meta) -> None:
        super().__init__(meta)
        latent = int(meta.arch["latent"])
        self.latent = latent
        self.enc_mu = make_net(meta.arch["net"], meta.shape, latent)
        self.enc_lam = make_net(meta.arch["net"], meta.shape, latent)
        self.dec = Net({"type": "mlp", "hidden": meta.arch.get("decoder") or []}, (latent, 1, 1), meta.data_dim)

    def encode(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.enc_mu(y), self.enc_lam(y).clamp(-LAMBDA_MAX, LAMBDA_MAX)

    def decode(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.dec(z))

    def pick_z(self, mu: Tensor, lam: Tensor) -> Tensor:
        if self.z_mode == "mean":
            return mu
        return mu + (0.5 * lam).exp() * torch.randn_like(mu)

    def jump(self, y: Tensor) -> Tensor:
        mu, lam = self.encode(y)
        return self.decode(self.pick_z(mu, lam))

    def neg_elbo(self, x: Tensor) -> Tensor:
        mu, lam = self.encode(x)
        z = mu + (0.5 * lam).exp() * torch.randn_like(mu)
        logits = self.dec(z)
        kind = self.meta.kind
        if kind == "vae":
            rec = (F.softplus(logits) - x * logits).sum(-1)
        elif kind == "alpha_vae":
            rec = (x - torch.sigmoid(logits)).abs().sum(-1) / float(self.meta.arch["alpha"])
        else:
            rec = ((x - torch.sigmoid(logits)) ** 2).sum(-1) / (2 * self.sigma**2)
        return rec + kl_standard_normal(mu, lam)

    def loss(self, x: Tensor, labels: Tensor | None) -> Tensor:
        return self.neg_elbo(x).mean()


class Uvb(LatentVae):
    """UVB: ``f(y) = ||y - sigmoid(dec(z))||^2 / (2 sigma^2) + KL(q(z|y) || N(0, I))``, ``z = mu + exp(lam/2) eps``."""

    has_energy = True
    has_score = True

    def energy(self, y: Tensor) -> Tensor:
        mu, lam = self.encode(y)
        m = self.decode(self.pick_z(mu, lam))
        return ((y - m) ** 2).sum(-1) / (2 * self.sigma**2) + kl_standard_normal(mu, lam)

    def jump(self, y: Tensor) -> Tensor:
        return WalkJumpModel.jump(self, y)

    def loss(self, x: Tensor, labels: Tensor | None) -> Tensor:
        y = (x + self.sigma * torch.randn_like(x)).requires_grad_(True)
        _, s = self.energy_and_score(y, create_graph=True)
        return ((x - (y + self.sigma**2 * s)) ** 2).sum(-1).mean()


class Grbm(nn.Module):
    """Gaussian-Bernoulli RBM prior ``E(z) = ||(z - mu)/s||^2 / 2 - sum softplus(W^T z / s^2 + b)``, ``s = exp(log_s)``."""

    def __init__(self, latent: int, hidden: int) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(latent))
        self.log_s = nn.Parameter(torch.zeros(latent))
        self.w = nn.Parameter(0.01 * (2 * torch.rand(latent, hidden) - 1))
        self.b = nn.Parameter(torch.zeros(hidden))

    def energy(self, z: Tensor) -> Tensor:
        inv_s2 = torch.exp(-2 * self.log_s)
        quad = 0.5 * ((z - self.mu) ** 2 * inv_s2).sum(-1)
        return quad - F.softplus((z * inv_s2) @ self.w + self.b).sum(-1)


class EbmVae(LatentVae):
    """A Gaussian-decoder VAE (tensors as ``uvb``) with a GRBM prior under ``prior.``."""

    def __init__(self, meta: Meta) -> None:
        super().__init__(meta)
        self.prior = Grbm(self.latent, int(meta.arch["prior_hidden"]))

    def probe(self, y: Tensor) -> dict[str, Tensor]:
        out = super().probe(y)
        out["prior_energy"] = self.prior.energy(self.encode(y)[0]).detach()
        return out

    def loss(self, x: Tensor, labels: Tensor | None) -> Tensor:
        # VAE part E_q[-ln p(x|z) + E(z) + ln q(z|x)]; prior part: denoising score matching on detached latents.
        mu, lam = self.encode(x)
        eps = torch.randn_like(mu)
        z = mu + (0.5 * lam).exp() * eps
        rec = ((x - self.decode(z)) ** 2).sum(-1) / (2 * self.sigma**2)
        log_q = -0.5 * (lam + eps * eps + math.log(2 * math.pi)).sum(-1)
        vae_loss = (rec + self.prior.energy(z) + log_q).mean()
        s_n = 0.1
        noise = torch.randn_like(mu)
        zt = (z.detach() + s_n * noise).requires_grad_(True)
        (g,) = torch.autograd.grad(self.prior.energy(zt).sum(), zt, create_graph=True)
        dsm = ((g - noise / s_n) ** 2).sum(-1).mean()
        return vae_loss + s_n**2 * dsm


class Classifier(WalkJumpModel):
    """``net``: logits over ``arch.classes``."""

    is_denoiser = False

    def __init__(self, meta: Meta) -> None:
        super().__init__(meta)
        self.net = make_net(meta.arch["net"], meta.shape, int(meta.arch["classes"]))

    def probe(self, y: Tensor) -> dict[str, Tensor]:
        return {"logits": self.net(y).detach()}

    def loss(self, x: Tensor, labels: Tensor | None) -> Tensor:
        if labels is None:
            raise ValueError("a classifier needs labels")
        return F.cross_entropy(self.net(x), labels)


TWINS: dict[str, type[WalkJumpModel]] = {
    "deen": Deen,
    "uvb": Uvb,
    "sigma_vae": LatentVae,
    "alpha_vae": LatentVae,
    "vae": LatentVae,
    "mdae": Mdae,
    "ebm_vae": EbmVae,
    "classifier": Classifier,
}


def build_twin(meta: Meta) -> WalkJumpModel:
    """A twin with PyTorch's default initialisation."""
    return TWINS[meta.kind](meta)


def load_twin(path: Path) -> WalkJumpModel:
    """Loads a walkjump checkpoint: metadata by ``safe_open(...).metadata()``, tensors by name (strict)."""
    model = build_twin(Meta.read(path))
    tensors = {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def save_walkjump(model: WalkJumpModel, path: Path, extra: dict[str, str] | None = None) -> None:
    """Exports a twin (or any module with the same state_dict keys and a ``meta``) as a walkjump checkpoint."""
    meta = model.meta
    metadata = {
        "format": "walkjump",
        "version": "1",
        "kind": meta.kind,
        "sigma": repr(float(meta.sigma)),
        "measurements": str(meta.measurements),
        "data": json.dumps(meta.data),
        "arch": json.dumps(meta.arch),
        **(extra or {}),
    }
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)


# ----------------------------------------------------------------------------------------------------------------
# Samplers (src/sampling/langevin.rs, src/run.rs recommended_sampler)


def recommended_sampler(meta: Meta) -> dict:
    """The checkpoint's ``sampler`` record if valid, else walkjump's default for its sigma and M."""
    rec = meta.extra.get("sampler")
    if rec is not None:
        try:
            r = json.loads(rec)
            if r["sampler"]["kind"] in ("overdamped", "sachs", "cheng") and int(r["every"]) > 0:
                return dict(r["sampler"])
        except (ValueError, KeyError, TypeError):
            pass
    if meta.measurements > 1:
        return {"kind": "cheng", "delta": meta.sigma / 2, "gamma": 0.5, "u": 1.0}
    return {"kind": "overdamped", "delta": math.sqrt(2) * 0.2 * meta.sigma}


def cheng_coefficients(delta: float, gamma: float, u: float) -> dict[str, float]:
    """Algorithm 2's coefficients with ``g = 1 / gamma`` (REFERENCE.md §6)."""
    g = 1.0 / gamma
    one_m_z1 = -math.expm1(-gamma * delta)
    one_m_z2 = -math.expm1(-2 * gamma * delta)
    var_yy = u * g * (2 * delta - 4 * g * one_m_z1 + g * one_m_z2)
    var_vv = u * one_m_z2
    cov_yv = u * g * one_m_z1**2
    l11 = math.sqrt(max(var_yy, 0.0))
    l21 = cov_yv / l11 if l11 > 0 else 0.0
    return {
        "z1": math.exp(-gamma * delta),
        "y_v": g * one_m_z1,
        "y_psi": u * g * (delta - g * one_m_z1),
        "v_psi": u * g * one_m_z1,
        "l11": l11,
        "l21": l21,
        "l22": math.sqrt(max(var_vv - l21 * l21, 0.0)),
    }


def sampler_step(s: dict, y: Tensor, v: Tensor, score: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """One step of the sampler ``s`` from ``(y, v)``; returns ``(y1, v1, psi)``."""
    delta = float(s["delta"])
    if s["kind"] == "overdamped":
        psi = score(y)
        return y + (0.5 * delta * delta) * psi + delta * torch.randn_like(y), v, psi
    gamma, u = float(s["gamma"]), float(s["u"])
    if s["kind"] == "sachs":
        z1, z2 = math.exp(-gamma * delta), math.exp(-2 * gamma * delta)
        y_half = y + 0.5 * delta * v
        psi = score(y_half)
        kick = (0.5 * u * delta) * psi
        v1 = (v + kick) * z1 + kick + math.sqrt(u * (1 - z2)) * torch.randn_like(y)
        return y_half + 0.5 * delta * v1, v1, psi
    c = cheng_coefficients(delta, gamma, u)
    psi = score(y)
    e1, e2 = torch.randn_like(y), torch.randn_like(y)
    y1 = y + c["y_v"] * v + c["y_psi"] * psi + c["l11"] * e1
    v1 = c["z1"] * v + c["v_psi"] * psi + c["l21"] * e1 + c["l22"] * e2
    return y1, v1, psi


# ----------------------------------------------------------------------------------------------------------------
# parity


def checkpoint_list(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    root = Path(__file__).resolve().parent.parent / "checkpoints"
    return sorted(root.glob("*.safetensors"))


def fixed_inputs(model: WalkJumpModel, rows: int, seed: int) -> Tensor:
    """Noisy-data-like inputs ``U[0,1] + sigma N(0,1)`` of the model's input width (d for a classifier)."""
    gen = torch.Generator().manual_seed(seed)
    width = model.dim if model.is_denoiser else model.data_dim
    sigma = model.sigma if model.is_denoiser else 0.0
    return torch.rand(rows, width, generator=gen) + sigma * torch.randn(rows, width, generator=gen)


def relative_error(ours: Tensor, theirs: Tensor) -> tuple[float, float, float]:
    """``(max |ours - theirs|, max |theirs|, their ratio)``."""
    diff = (ours.double() - theirs.double()).abs().max().item()
    scale = theirs.double().abs().max().item()
    return diff, scale, diff / scale if scale > 0 else diff


def cmd_parity(a: argparse.Namespace) -> int:
    torch.manual_seed(0)
    paths = checkpoint_list(a.checkpoints)
    if not paths:
        print("no checkpoints", file=sys.stderr)
        return 2
    failures = 0
    header = f"{'checkpoint':<24} {'kind':<10} {'quantity':<13} {'shape':<12} {'max|diff|':>10} {'max|ref|':>10} {'rel':>9}  ok"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="wj-parity-") as tmp:
        for path in paths:
            name = path.stem
            try:
                model = load_twin(path)
            except Exception as e:  # noqa: BLE001 -- any load error is one parity failure, reported in the table
                print(f"{name:<24} load failed: {e}")
                failures += 1
                continue
            model.z_mode = "mean"
            y = fixed_inputs(model, a.rows, a.seed)
            inp, out = Path(tmp) / f"{name}-in.safetensors", Path(tmp) / f"{name}-out.safetensors"
            save_file({"y": y.contiguous()}, str(inp))
            cmd = [a.walkjump, "probe", "-c", str(path), "--inputs", str(inp), "--out", str(out)]
            run = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{name:<24} walkjump probe failed: {run.stderr.strip()}")
                failures += 1
                continue
            theirs = load_file(str(out))
            ours = model.probe(y)
            for key in sorted(set(ours) | set(theirs)):
                if key not in ours or key not in theirs:
                    side = "walkjump" if key not in theirs else "the twin"
                    print(f"{name:<24} {model.meta.kind:<10} {key:<13} missing from {side}")
                    failures += 1
                    continue
                o, t = ours[key], theirs[key]
                if o.shape != t.shape:
                    print(f"{name:<24} {model.meta.kind:<10} {key:<13} shape {list(o.shape)} vs {list(t.shape)}")
                    failures += 1
                    continue
                diff, scale, rel = relative_error(o, t)
                ok = rel <= a.tol
                failures += 0 if ok else 1
                shape = "x".join(str(s) for s in t.shape)
                print(
                    f"{name:<24} {model.meta.kind:<10} {key:<13} {shape:<12} {diff:>10.2e} {scale:>10.2e} "
                    f"{rel:>9.2e}  {'yes' if ok else 'NO'}"
                )
    print(
        f"\n{'PASS' if failures == 0 else 'FAIL'}: tolerance {a.tol:g} relative (max |diff| / max |walkjump|), "
        f"{a.rows} inputs per checkpoint, z = mean, {failures} failure(s)"
    )
    return 0 if failures == 0 else 1


# ----------------------------------------------------------------------------------------------------------------
# exporting random twins (covers kinds and nets that no bundled checkpoint has)

MNIST = {"name": "mnist-10k", "channels": 1, "height": 28, "width": 28}
SMALL_CONV = {"type": "conv", "channels": [8, 16], "strides": [2, 2], "kernel": 3, "fc": [32]}
VAE_ARCH = {"net": {"type": "mlp", "hidden": [64]}, "decoder": [64], "latent": 8}
EXAMPLES: dict[str, Meta] = {
    "x-deen-conv-s0.5": Meta("deen", 0.5, 1, MNIST, {"net": SMALL_CONV}),
    "x-deen-mlp-quad-s0.7": Meta(
        "deen", 0.7, 1, MNIST, {"net": {"type": "mlp", "hidden": [64, 32]}, "quadratic": True}
    ),
    "x-uvb-conv-s1.0": Meta("uvb", 1.0, 1, MNIST, {**VAE_ARCH, "net": SMALL_CONV}),
    "x-alpha-vae-s1.0": Meta("alpha_vae", 1.0, 1, MNIST, {**VAE_ARCH, "alpha": 0.5}),
    "x-vae-conv": Meta("vae", 1.0, 1, MNIST, {**VAE_ARCH, "net": SMALL_CONV}),
    "x-mdae-conv-1x3-s0.8": Meta("mdae", 0.8, 3, MNIST, {"net": SMALL_CONV}),
    "x-ebm-vae-s0.3": Meta("ebm_vae", 0.3, 1, MNIST, {**VAE_ARCH, "prior_hidden": 16}),
    "x-classifier-mlp": Meta("classifier", 1.0, 1, MNIST, {"net": {"type": "mlp", "hidden": [32]}, "classes": 10}),
    # Layer graphs: every op of src/nn/graph.rs in one energy, and a small U-Net denoiser.
    "x-deen-graph-s1.0": Meta("deen", 1.0, 1, MNIST, {"net": {"type": "graph", "nodes": [
        {"op": "conv2d", "in": [0], "name": "c0", "out": 8, "kernel": 3, "padding": 1},
        {"op": "group_norm", "in": [1], "name": "gn0", "groups": 2},
        {"op": "softplus", "in": [2], "beta": 2.0},
        {"op": "conv2d", "in": [3], "name": "c1", "out": 8, "kernel": 3, "padding": 1, "bias": False},
        {"op": "batch_norm", "in": [4], "name": "bn1"},
        {"op": "leaky_relu", "in": [5], "alpha": 0.1},
        {"op": "add", "in": [6, 3]},
        {"op": "avg_pool", "in": [7], "kernel": 2},
        {"op": "conv2d", "in": [8], "name": "c2", "out": 16, "kernel": 3, "stride": 2, "padding": 1},
        {"op": "elu", "in": [9], "alpha": 1.0},
        {"op": "upsample", "in": [10], "scale": 2},
        {"op": "concat", "in": [11, 8]},
        {"op": "channel_mul", "in": [12], "name": "cm"},
        {"op": "channel_add", "in": [13], "name": "ca"},
        {"op": "sigmoid", "in": [14]},
        {"op": "mul", "in": [14, 15]},
        {"op": "global_avg_pool", "in": [16]},
        {"op": "flatten", "in": [17]},
        {"op": "linear", "in": [18], "name": "l0", "out": 16},
        {"op": "layer_norm", "in": [19], "name": "ln"},
        {"op": "gelu", "in": [20], "tanh": True},
        {"op": "linear", "in": [21], "name": "l1", "out": 8},
        {"op": "tanh", "in": [22]},
        {"op": "erf", "in": [22]},
        {"op": "sub", "in": [23, 24]},
        {"op": "affine", "in": [25], "mul": 0.5, "add": 0.1},
        {"op": "silu", "in": [26]},
        {"op": "gelu", "in": [27]},
        {"op": "unflatten", "in": [28], "shape": [2, 2, 2]},
        {"op": "relu", "in": [29]},
        {"op": "reduce_mean", "in": [30]},
    ]}, "quadratic": True}),
    "x-mdae-graph-unet-s0.5": Meta("mdae", 0.5, 1, MNIST, {"net": {"type": "graph", "nodes": [
        {"op": "conv2d", "in": [0], "name": "d0", "out": 8, "kernel": 3, "padding": 1},
        {"op": "silu", "in": [1]},
        {"op": "avg_pool", "in": [2], "kernel": 2},
        {"op": "conv2d", "in": [3], "name": "d1", "out": 8, "kernel": 3, "padding": 1},
        {"op": "relu", "in": [4]},
        {"op": "upsample", "in": [5], "scale": 2},
        {"op": "concat", "in": [6, 2]},
        {"op": "conv2d", "in": [7], "name": "out", "out": 1, "kernel": 1},
        {"op": "flatten", "in": [8]},
    ]}}),
}


def init_graph(model: nn.Module) -> None:
    """Random values for a layer graph's tensors (``GraphNet`` starts at zeros): weights by fan-in, per-channel scales
    near 1, offsets and running means near 0, running variances in [0.5, 1.5]."""
    for net in model.modules():
        if not isinstance(net, GraphNet):
            continue
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.normal_(0.0, 0.2)
            elif t.dim() == 1:
                t.normal_(1.0, 0.2)
            else:
                t.normal_(0.0, 1.0 / math.sqrt(t[0].numel()))


def cmd_export_examples(a: argparse.Namespace) -> int:
    torch.manual_seed(a.seed)
    out = Path(a.dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, meta in EXAMPLES.items():
        model = build_twin(meta)
        with torch.no_grad():
            init_graph(model)
            # PyTorch's default init shrinks signals layer by layer; scale weights up so that every term (the KL of
            # UVB, the SiLU curvature) is large enough for the parity check to notice a mistake in it.
            for pname, param in model.named_parameters():
                if pname.endswith(".weight"):
                    param.mul_(a.weight_scale)
        if isinstance(model, EbmVae):  # move the prior off its neutral start so the test sees every tensor
            with torch.no_grad():
                model.prior.mu.normal_(0, 0.3)
                model.prior.log_s.normal_(0, 0.2)
                model.prior.w.normal_(0, 0.3)
                model.prior.b.normal_(0, 0.3)
        save_walkjump(model, out / f"{name}.safetensors")
        print(out / f"{name}.safetensors")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# time


SYNC: Callable[[], None] = lambda: None  # torch.cuda.synchronize when timing on a GPU (cmd_time sets it)


def time_median(budget: float, fn0: Callable[[], None]) -> tuple[float, float]:
    """Median seconds of ``fn`` over about ``budget`` seconds after a warm-up of at least two calls and a quarter of
    the budget (as walkjump's bench), and the
    mean process CPU seconds per call over the same calls (``cpu_ms`` of walkjump's bench). On a GPU each call ends
    with ``SYNC`` so that the time covers the kernels, not just their launch."""

    def fn() -> None:
        fn0()
        SYNC()

    warm = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - warm < budget / 4:
        fn()
        calls += 1
    samples: list[float] = []
    cpu0 = time.process_time()
    start = time.perf_counter()
    while len(samples) < 3 or (time.perf_counter() - start < budget and len(samples) < 1000):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    cpu = (time.process_time() - cpu0) / len(samples)
    samples.sort()
    return samples[len(samples) // 2], cpu


def row(model: str, op: str, batch: int, timing: tuple[float, float]) -> dict:
    secs, cpu = timing
    return {"model": model, "op": op, "batch": batch, "ms": secs * 1e3, "per_sec": 1.0 / secs, "cpu_ms": cpu * 1e3}


def walk_jump_stepper(model: WalkJumpModel, sampler: dict, n: int) -> Callable[[], None]:
    """A closure advancing ``n`` chains from ``U[0,1]`` by one step of ``sampler`` per call."""
    state = {"y": torch.rand(n, model.dim), "v": torch.zeros(n, model.dim)}

    def step() -> None:
        y1, v1, psi = sampler_step(sampler, state["y"], state["v"], model.score)
        # Chain::step also takes per-chain norms of y, v and the score (divergence check, statistics).
        torch.stack([y1.norm(dim=-1), v1.norm(dim=-1), psi.norm(dim=-1)]).tolist()
        state["y"], state["v"] = y1.detach(), v1.detach()

    return step


def bench_model(label: str, path: Path, batches: list[int], budget: float, train: bool) -> list[dict]:
    """The operations of ``walkjump bench`` on the twin: walk-jump step per batch, NEBULA step, denoise, train step."""
    rows: list[dict] = []
    model = load_twin(path)
    model.z_mode = "sample"  # walkjump's bench loads models with one z sample per call
    model.requires_grad_(False)  # sampling needs grad_y only
    if model.has_score:
        sampler = recommended_sampler(model.meta)
        for n in batches:
            rows.append(row(label, "walk-jump step", n, time_median(budget, walk_jump_stepper(model, sampler, n))))
        y64 = torch.rand(64, model.dim)

        def nebula_step() -> None:
            (y64 + 0.01 * model.score(y64)).sum().item()

        rows.append(row(label, "nebula step", 64, time_median(budget, nebula_step)))
    if model.is_denoiser:
        y64 = torch.rand(64, model.dim)

        def denoise() -> None:
            if model.has_score:  # the jump differentiates the energy
                model.jump(y64).sum().item()
            else:
                with torch.no_grad():
                    model.jump(y64).sum().item()

        rows.append(row(label, "denoise", 64, time_median(budget, denoise)))
    if train:
        model = load_twin(path).train()
        x = torch.rand(64, model.data_dim)
        labels = torch.arange(64) % 10
        opt = torch.optim.Adam(model.parameters(), lr=1e-6)

        def train_step() -> None:
            opt.zero_grad(set_to_none=True)
            model.loss(x, labels).backward()
            opt.step()

        rows.append(row(label, "train step", 64, time_median(budget, train_step)))
    return rows


def gemm_peak(budget: float) -> float:
    """f32 GFLOP/s of a 1024 x 1024 x 1024 matmul (walkjump bench's ``gemm_peak``)."""
    n = 1024
    x, y = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / time_median(budget, lambda: torch.mm(x, y))[0] / 1e9


def cmd_time(a: argparse.Namespace) -> int:
    global SYNC
    threads = a.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
            return 2
        # Every tensor and parameter the twins create (inputs, noise, weights) lands on the GPU.
        torch.set_default_device(device)
        SYNC = torch.cuda.synchronize
        # Same arithmetic as walkjump on CUDA: full f32 GEMMs, no TF32.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        name = f"cuda ({torch.cuda.get_device_name(device)}), torch {torch.__version__}"
    else:
        name = f"cpu ({platform.processor() or platform.machine()}), torch {torch.__version__}"
    batches = [int(b) for b in a.batches.split(",")]
    rows: list[dict] = []
    for path in checkpoint_list(a.checkpoints):
        print(f"measuring {path.stem} ...", file=sys.stderr)
        rows.extend(bench_model(path.stem, path, batches, a.budget, not a.no_train))
    report = {
        "device": name,
        "threads": torch.get_num_threads(),
        "gemm_gflops": gemm_peak(a.budget),
        "rows": rows,
    }
    print(f"{'model':<24} {'op':<16} {'batch':>6} {'ms':>10} {'per second':>12}")
    for r in rows:
        print(f"{r['model']:<24} {r['op']:<16} {r['batch']:>6} {r['ms']:>10.3f} {r['per_sec']:>12.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {a.json}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# ratios


def cmd_ratios(a: argparse.Namespace) -> int:
    """Joins ``walkjump bench --json`` and ``time --json`` rows on (model, op, batch): PyTorch ms / walkjump ms."""
    wj_reports = [json.loads(Path(p).read_text()) for p in a.walkjump_json]
    pt_reports = [json.loads(Path(p).read_text()) for p in a.torch_json]
    wj, pt = wj_reports[0], pt_reports[0]
    theirs = {(r["model"], r["op"], r["batch"]): r for rep in pt_reports for r in rep["rows"]}

    def gemm(reports: list[dict]) -> str:
        vals = sorted(r["gemm_gflops"] for r in reports if "gemm_gflops" in r)
        return f"f32 GEMM {vals[len(vals) // 2]:.0f} GFLOP/s (median of {len(vals)})" if vals else "no GEMM figure"

    print(f"walkjump: {wj.get('device')}, {wj.get('threads')} threads, {gemm(wj_reports)}")
    print(f"PyTorch:  {pt.get('device')}, {pt.get('threads')} threads, {gemm(pt_reports)}")
    print(
        f"{'model':<24} {'op':<16} {'batch':>6} {'walkjump ms':>12} {'PyTorch ms':>12} {'ratio':>7}"
        f" {'wj cpu ms':>10} {'PT cpu ms':>10} {'cpu ratio':>9}"
    )

    def cpu(r: dict) -> str:
        return f"{r['cpu_ms']:>10.3f}" if r.get("cpu_ms") is not None else f"{'n/a':>10}"

    for r in (r for rep in wj_reports for r in rep["rows"]):
        t = theirs.get((r["model"], r["op"], r["batch"]))
        if t is None:
            continue
        ratio = t["ms"] / r["ms"]
        cpu_ratio = (
            f"{t['cpu_ms'] / r['cpu_ms']:>9.2f}"
            if r.get("cpu_ms") and t.get("cpu_ms") is not None
            else f"{'n/a':>9}"
        )
        print(
            f"{r['model']:<24} {r['op']:<16} {r['batch']:>6} {r['ms']:>12.3f} {t['ms']:>12.3f} {ratio:>7.2f}"
            f" {cpu(r)} {cpu(t)} {cpu_ratio}"
        )
    print("ratio = PyTorch ms / walkjump ms (> 1: walkjump is faster), median wall time per call")
    print("cpu ratio = the same with the mean process CPU time per call (less sensitive to other jobs on the machine)")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    pp = sub.add_parser("parity", help="compare energy / score / jump with `walkjump probe`")
    pp.add_argument("checkpoints", nargs="*", help="default: every checkpoints/*.safetensors")
    pp.add_argument("--walkjump", default=os.environ.get("WALKJUMP", "walkjump"), help="walkjump binary")
    pp.add_argument("--rows", type=int, default=16, help="inputs per checkpoint")
    pp.add_argument("--seed", type=int, default=0)
    pp.add_argument("--tol", type=float, default=1e-4, help="max |diff| / max |walkjump value|")
    pt = sub.add_parser("time", help="time the bench operations, JSON rows like `walkjump bench --json`")
    pt.add_argument("checkpoints", nargs="*", help="default: every checkpoints/*.safetensors")
    pt.add_argument("--batches", default="1,64,256")
    pt.add_argument("--budget", type=float, default=1.0, help="seconds per measurement after warm-up")
    pt.add_argument("--threads", type=int, default=0, help="torch threads (default: number of cores)")
    pt.add_argument("--no-train", action="store_true")
    pt.add_argument("--json", help="write the report here")
    pt.add_argument("--device", default="cpu", help="cpu or cuda[:N] (PyTorch device)")
    pe = sub.add_parser("export-examples", help="write random twins of every kind as walkjump checkpoints")
    pe.add_argument("dir")
    pe.add_argument("--seed", type=int, default=0)
    pe.add_argument("--weight-scale", type=float, default=2.5, help="multiply PyTorch's default init by this")
    pr = sub.add_parser("ratios", help="speed ratios from `walkjump bench --json` and `time --json` files")
    pr.add_argument("--walkjump-json", action="append", required=True, help="walkjump bench --json file (repeat)")
    pr.add_argument("--torch-json", action="append", required=True, help="time --json file (repeat)")
    a = p.parse_args()
    if a.mode == "parity":
        torch.set_num_threads(1)
        return cmd_parity(a)
    if a.mode == "export-examples":
        return cmd_export_examples(a)
    if a.mode == "ratios":
        return cmd_ratios(a)
    return cmd_time(a)


if __name__ == "__main__":
    sys.exit(main())
