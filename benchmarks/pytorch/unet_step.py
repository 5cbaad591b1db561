#!/usr/bin/env python3
"""The Stable Diffusion UNet in PyTorch, written from its architecture (LDM/SGM openaimodel.UNetModel:
ResBlocks, SpatialTransformers with GEGLU feed-forward, nearest-neighbour upsampling), with the module
names of the checkpoints, so that jdiffusion's random full-size checkpoints load into it unchanged.

Two uses:
  --check CASE_DIR    run a conformance UNet case (../shared/conformance/unet/<case>: manifest.json,
                      model.safetensors, io.safetensors) in float32 and compare with its golden output
                      under the case's float32 tolerances; this proves the network below is the real one.
  --checkpoint FILE   time one UNet step (eager PyTorch, F.scaled_dot_product_attention where the torch
                      has it) on a checkpoint's weights, e.g. the SD 1.5-shaped file that jdiffusion's
                      benchmarks generate, so that jdiffusion's step and PyTorch's are timed on the same
                      weights, shapes and GPU.

Needs torch and numpy only (safetensors files are read here directly).
"""
import argparse
import json
import math
import mmap
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PREFIX = "model.diffusion_model."

# unet_config of the full-size families, as their inference yamls give them
CONFIGS = {
    "sd15": dict(in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1], num_res_blocks=2,
                 channel_mult=[1, 2, 4, 4], num_heads=8, transformer_depth=1, context_dim=768),
    "sd21": dict(in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1], num_res_blocks=2,
                 channel_mult=[1, 2, 4, 4], num_head_channels=64, transformer_depth=1, context_dim=1024,
                 use_linear_in_transformer=True),
    "sdxl": dict(in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2], num_res_blocks=2,
                 channel_mult=[1, 2, 4], num_head_channels=64, transformer_depth=[1, 2, 10], context_dim=2048,
                 use_linear_in_transformer=True, adm_in_channels=2816),
}


# ---- safetensors, read with numpy ------------------------------------------------------------------

def read_safetensors(path):
    """name -> torch tensor (F32, F16, F64, I64; BF16 widened to float32)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        shape = info["shape"]
        dtype = info["dtype"]
        count = int(np.prod(shape)) if shape else 1
        if dtype == "F32":
            a = np.frombuffer(data, np.float32, count, base + start)
        elif dtype == "F16":
            a = np.frombuffer(data, np.float16, count, base + start)
        elif dtype == "F64":
            a = np.frombuffer(data, np.float64, count, base + start)
        elif dtype == "I64":
            a = np.frombuffer(data, np.int64, count, base + start)
        elif dtype == "BF16":
            a = (np.frombuffer(data, np.uint16, count, base + start).astype(np.uint32) << 16).view(np.float32)
        else:
            continue
        out[name] = torch.from_numpy(a.copy()).reshape(shape)
    return out


# ---- the network -----------------------------------------------------------------------------------

def timestep_embedding(t, dim, max_period=10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def attention(q, k, v, heads):
    b, n, inner = q.shape
    d = inner // heads
    q, k, v = (x.reshape(b, -1, heads, d).transpose(1, 2) for x in (q, k, v))
    if hasattr(F, "scaled_dot_product_attention"):
        o = F.scaled_dot_product_attention(q, k, v)
    else:
        o = torch.softmax(q @ k.transpose(-1, -2) * d ** -0.5, dim=-1) @ v
    return o.transpose(1, 2).reshape(b, n, inner)


class CrossAttention(nn.Module):
    def __init__(self, dim, context_dim, heads, dim_head):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Identity())

    def forward(self, x, context=None):
        c = x if context is None else context
        return self.to_out(attention(self.to_q(x), self.to_k(c), self.to_v(c), self.heads))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, dim_head, context_dim):
        super().__init__()
        self.attn1 = CrossAttention(dim, dim, heads, dim_head)
        self.ff = nn.Module()
        self.ff.net = nn.Sequential(GEGLU(dim, 4 * dim), nn.Identity(), nn.Linear(4 * dim, dim))
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff.net(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(self, channels, heads, dim_head, depth, context_dim, linear):
        super().__init__()
        inner = heads * dim_head
        self.linear = linear
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner) if linear else nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)])
        self.proj_out = nn.Linear(inner, channels) if linear else nn.Conv2d(inner, channels, 1)

    def forward(self, x, context):
        b, c, h, w = x.shape
        x_in = x
        x = self.norm(x)
        if not self.linear:
            x = self.proj_in(x)
        x = x.flatten(2).transpose(1, 2)
        if self.linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context)
        if self.linear:
            x = self.proj_out(x)
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        if not self.linear:
            x = self.proj_out(x)
        return x + x_in


class ResBlock(nn.Module):
    def __init__(self, channels, emb_channels, out_channels):
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(nn.GroupNorm(32, out_channels), nn.SiLU(), nn.Identity(),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        h = h + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Blocks(nn.Sequential):
    """LDM's TimestepEmbedSequential: each layer gets what it takes."""

    def forward(self, x, emb, context):
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class UNet(nn.Module):
    def __init__(self, in_channels, out_channels, model_channels, attention_resolutions, num_res_blocks, channel_mult,
                 context_dim, num_heads=-1, num_head_channels=-1, transformer_depth=1, transformer_depth_middle=None,
                 use_linear_in_transformer=False, adm_in_channels=0, **ignored):
        super().__init__()
        levels = len(channel_mult)
        depth = transformer_depth if isinstance(transformer_depth, list) else [transformer_depth] * levels
        middle = transformer_depth_middle if transformer_depth_middle is not None else depth[-1]
        mc = model_channels
        ted = 4 * mc
        self.model_channels = mc

        def transformer(ch, d):
            if num_head_channels == -1:
                heads, dim_head = num_heads, ch // num_heads
            else:
                heads, dim_head = ch // num_head_channels, num_head_channels
            return SpatialTransformer(ch, heads, dim_head, d, context_dim, use_linear_in_transformer)

        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        self.adm = adm_in_channels
        if adm_in_channels:
            self.label_emb = nn.Sequential(nn.Sequential(nn.Linear(adm_in_channels, ted), nn.SiLU(), nn.Linear(ted, ted)))
        self.input_blocks = nn.ModuleList([Blocks(nn.Conv2d(in_channels, mc, 3, padding=1))])
        chans = [mc]
        ch = mc
        ds = 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, ted, mult * mc)]
                ch = mult * mc
                if ds in attention_resolutions and depth[level] > 0:
                    layers.append(transformer(ch, depth[level]))
                self.input_blocks.append(Blocks(*layers))
                chans.append(ch)
            if level != levels - 1:
                self.input_blocks.append(Blocks(Downsample(ch)))
                chans.append(ch)
                ds *= 2
        self.middle_block = Blocks(ResBlock(ch, ted, ch), transformer(ch, middle), ResBlock(ch, ted, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + chans.pop(), ted, mc * mult)]
                ch = mc * mult
                if ds in attention_resolutions and depth[level] > 0:
                    layers.append(transformer(ch, depth[level]))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Blocks(*layers))
        self.out = nn.Sequential(nn.GroupNorm(32, ch), nn.SiLU(), nn.Conv2d(mc, out_channels, 3, padding=1))

    def forward(self, x, timesteps, context, y=None):
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).to(x.dtype))
        if self.adm:
            emb = emb + self.label_emb(y)
        hs = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, context)
            hs.append(h)
        h = self.middle_block(h, emb, context)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb, context)
        return self.out(h)


def load(config, weights):
    net = UNet(**config)
    state = {k[len(PREFIX):]: v for k, v in weights.items() if k.startswith(PREFIX)}
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return net


# ---- FLOPs, counted from the layers the step runs -----------------------------------------------------

def count_flops(net, *inputs):
    """Multiply-adds of convolutions, linear layers and attention, ×2 (the convention jdiffusion's benchmarks use)."""
    total = [0]
    hooks = []

    def conv(m, i, o):
        total[0] += 2 * o.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups

    def linear(m, i, o):
        total[0] += 2 * o.numel() * m.in_features

    def attn(m, i, o):
        x = i[0]
        c = x if len(i) < 2 or i[1] is None else i[1]
        inner = m.to_q.out_features
        total[0] += 4 * x.shape[0] * x.shape[1] * c.shape[1] * inner

    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear))
        elif isinstance(m, CrossAttention):
            hooks.append(m.register_forward_hook(attn))
    with torch.no_grad():
        net(*inputs)
    for h in hooks:
        h.remove()
    return total[0]


# ---- the two uses ------------------------------------------------------------------------------------

def check(case_dir):
    manifest = json.load(open(f"{case_dir}/manifest.json"))
    net = load(manifest["unet_config"], read_safetensors(f"{case_dir}/model.safetensors")).eval()
    io = read_safetensors(f"{case_dir}/io.safetensors")
    y = io.get("y")
    with torch.no_grad():
        got = net(io["x"].float(), io["timesteps"].float(), io["context"].float(), None if y is None else y.float())
    ref = io["eps"].float()
    rel = ((got - ref).norm() / ref.norm()).item()
    mx = (got - ref).abs().max().item()
    tol = manifest["tolerances"]["float32"]
    ok = rel <= tol["rel_l2_err"] and mx <= tol["max_abs_err"]
    print(f"check {case_dir} {'PASS' if ok else 'FAIL'} rel_l2_err={rel:.3e} max_abs_err={mx:.3e}")
    return ok


def bench(args):
    config = dict(CONFIGS[args.model])
    device = torch.device(args.device)
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    net = load(config, read_safetensors(args.checkpoint)).to(device=device, dtype=dtype).eval()
    g = torch.Generator().manual_seed(0)
    b = args.batch
    x = torch.randn(b, 4, args.latent, args.latent, generator=g).to(device, dtype)
    t = torch.full((b,), 500.0, device=device)
    ctx = torch.randn(b, 77, config["context_dim"], generator=g).to(device, dtype)
    y = torch.randn(b, config["adm_in_channels"], generator=g).to(device, dtype) if config.get("adm_in_channels") else None
    flops = count_flops(net, x, t, ctx, y)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.iters):
            sync()
            start = time.perf_counter()
            net(x, t, ctx, y)
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    med = statistics.median(times)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"pytorch {torch.__version__} unet step {args.model} latent {args.latent}x{args.latent} batch {b} {args.dtype} "
          f"on {name}: median {med * 1e3:.2f} ms of {len(times)} (min {min(times) * 1e3:.2f}), "
          f"{flops / 1e9:.1f} GFLOP, {flops / med / 1e12:.2f} TFLOP/s, "
          f"sdpa={'yes' if hasattr(F, 'scaled_dot_product_attention') else 'no'}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", nargs="+", metavar="CASE_DIR", help="conformance UNet case folders to check")
    p.add_argument("--checkpoint", help="a checkpoint with model.diffusion_model.* weights to time")
    p.add_argument("--model", choices=sorted(CONFIGS), default="sd15")
    p.add_argument("--latent", type=int, default=64, help="latent height and width (64 for 512x512)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    args = p.parse_args()
    if args.check:
        torch.manual_seed(0)
        ok = all([check(c) for c in args.check])
        sys.exit(0 if ok else 1)
    if not args.checkpoint:
        p.error("give --check CASE_DIR... or --checkpoint FILE")
    bench(args)


if __name__ == "__main__":
    main()
