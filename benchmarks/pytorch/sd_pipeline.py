#!/usr/bin/env python3
"""A whole SD 1.x txt2img in PyTorch, for timing against jdiffusion on the same GPU and weights: the
CLIP text encoder (transformers naming under cond_stage_model.transformer.text_model.), the UNet of
unet_step.py, k-diffusion's Euler ancestral on the discrete schedule with CFG as one batch, and the
VAE decoder (LDM naming under first_stage_model.), written from the architectures.

  --check-clip CASE_DIR / --check-vae CASE_DIR / --check-pipeline CASE_DIR
      the text encoder, the decoder, whole txt2img runs (sampler, schedule, noise, CFG) against the
      conformance cases (float32 against their float64 golden, within the cases' float32 bounds).
  --checkpoint FILE
      time 512x512 (or --size), --steps 20, Euler a, CFG 7, batch 1 on --device: text encoding of the
      prompt and the negative prompt, the steps, the decode, the picture as bytes on the host. The
      prompt is given as token ids (tokenizing takes microseconds; the ids are fixed below).
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from unet_step import CONFIGS, UNet, read_safetensors

CLIP = "cond_stage_model.transformer.text_model."
VAE = "first_stage_model."


# ---- CLIP text encoder ------------------------------------------------------------------------------

class ClipLayer(nn.Module):
    def __init__(self, d, heads, quick_gelu):
        super().__init__()
        self.heads = heads
        self.quick_gelu = quick_gelu
        self.self_attn = nn.Module()
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.self_attn, n, nn.Linear(d, d))
        self.layer_norm1 = nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, 4 * d)
        self.mlp.fc2 = nn.Linear(4 * d, d)
        self.layer_norm2 = nn.LayerNorm(d)

    def forward(self, x, mask):
        b, n, d = x.shape
        h = self.layer_norm1(x)
        a = self.self_attn
        q, k, v = (p(h).reshape(b, n, self.heads, -1).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
        w = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5 + mask, dim=-1)
        x = x + a.out_proj((w @ v).transpose(1, 2).reshape(b, n, d))
        m = self.mlp.fc1(self.layer_norm2(x))
        m = m * torch.sigmoid(1.702 * m) if self.quick_gelu else F.gelu(m)
        return x + self.mlp.fc2(m)


class ClipText(nn.Module):
    def __init__(self, vocab, d, heads, layers, quick_gelu=True):
        super().__init__()
        self.embeddings = nn.Module()
        self.embeddings.token_embedding = nn.Embedding(vocab, d)
        self.embeddings.position_embedding = nn.Embedding(77, d)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([ClipLayer(d, heads, quick_gelu) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, ids):
        """Every layer's output (the embeddings first) and the last one through the final norm."""
        x = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding.weight[: ids.shape[1]]
        mask = torch.full((ids.shape[1], ids.shape[1]), float("-inf"), device=ids.device, dtype=x.dtype).triu(1)
        hidden = [x]
        for layer in self.encoder.layers:
            x = layer(x, mask)
            hidden.append(x)
        return hidden, self.final_layer_norm(x)


def load_clip(weights, heads):
    state = {k[len(CLIP):]: v.float() for k, v in weights.items() if k.startswith(CLIP) and "position_ids" not in k}
    vocab, d = state["embeddings.token_embedding.weight"].shape
    layers = sum(1 for k in state if k.endswith("layer_norm1.weight"))
    net = ClipText(vocab, d, heads, layers)
    net.load_state_dict(state, strict=True)
    return net


# ---- VAE decoder ------------------------------------------------------------------------------------

def normalize(c):
    return nn.GroupNorm(32, c, eps=1e-6)


class VaeRes(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = normalize(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = normalize(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class VaeAttn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = normalize(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (p(n).reshape(b, 1, c, h * w).transpose(-1, -2) for p in (self.q, self.k, self.v))
        if hasattr(F, "scaled_dot_product_attention"):
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            o = torch.softmax(q @ k.transpose(-1, -2) * c ** -0.5, dim=-1) @ v
        return x + self.proj_out(o.transpose(-1, -2).reshape(b, c, h, w))


class Decoder(nn.Module):
    def __init__(self, ch, mult, blocks, z):
        super().__init__()
        c = ch * mult[-1]
        self.conv_in = nn.Conv2d(z, c, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = VaeRes(c, c), VaeAttn(c), VaeRes(c, c)
        self.up = nn.ModuleList([nn.Module() for _ in mult])
        for level in reversed(range(len(mult))):
            out = ch * mult[level]
            self.up[level].block = nn.ModuleList()
            for _ in range(blocks + 1):
                self.up[level].block.append(VaeRes(c, out))
                c = out
            if level > 0:
                self.up[level].upsample = nn.Module()
                self.up[level].upsample.conv = nn.Conv2d(c, c, 3, padding=1)
        self.norm_out = normalize(c)
        self.conv_out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for level in reversed(range(len(self.up))):
            for block in self.up[level].block:
                h = block(h)
            if level > 0:
                h = self.up[level].upsample.conv(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class VaeDecode(nn.Module):
    def __init__(self, ch, mult, blocks, z):
        super().__init__()
        self.post_quant_conv = nn.Conv2d(z, z, 1)
        self.decoder = Decoder(ch, mult, blocks, z)

    def forward(self, z):
        return self.decoder(self.post_quant_conv(z))


def load_vae(weights):
    state = {k[len(VAE):]: v.float() for k, v in weights.items()
             if k.startswith(VAE + "decoder.") or k.startswith(VAE + "post_quant_conv.")}
    z = state["post_quant_conv.weight"].shape[0]
    levels = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("decoder.up."))
    blocks = 1 + max(int(k.split(".")[4]) for k in state if k.startswith("decoder.up.0.block."))
    ch = state["decoder.conv_out.weight"].shape[1]
    mult = [state[f"decoder.up.{i}.block.0.conv1.weight"].shape[0] // ch for i in range(levels)]
    net = VaeDecode(ch, mult, blocks - 1, z)
    net.load_state_dict(state, strict=True)
    return net


# ---- the sampler: k-diffusion's Euler ancestral on SD's discrete schedule ------------------------------

def discrete_sigmas():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    ac = torch.cumprod(1 - betas, 0)
    return ((1 - ac) / ac) ** 0.5


def sigma_to_t(sigma, log_sigmas):
    d = sigma.log() - log_sigmas
    low = (d >= 0).cumsum(0).argmax().clamp(max=log_sigmas.shape[0] - 2)
    w = ((log_sigmas[low] - sigma.log()) / (log_sigmas[low] - log_sigmas[low + 1])).clamp(0, 1)
    return (1 - w) * low + w * (low + 1)


def uniform_sigmas(steps, sigmas):
    """k-diffusion's get_sigmas: timesteps evenly from the last to 0, their sigmas, then 0."""
    log_sigmas = sigmas.log()
    t = torch.linspace(len(sigmas) - 1, 0, steps, dtype=torch.float64)
    low = t.floor().long()
    high = t.ceil().long()
    w = t - low
    s = ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()
    return torch.cat([s, s.new_zeros(1)])


def karras_sigmas(steps, sigmas, rho=7.0):
    lo, hi = sigmas[0].item() ** (1 / rho), sigmas[-1].item() ** (1 / rho)
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    return torch.cat([(hi + ramp * (lo - hi)) ** rho, torch.zeros(1, dtype=torch.float64)])


def txt2img(unet, clip, vae, ids, neg_ids, latent_hw, sigmas, cfg, seed, device, dtype, ancestral=True):
    """The latent and the decoded image (float, about [-1, 1]). Noise as A1111/k-diffusion draw it on the
    CPU: torch.randn of the latent's shape in float32 from one generator seeded once, widened to float64."""
    g = torch.Generator(device="cpu").manual_seed(seed)

    def noise():
        return torch.randn([1, 4, latent_hw[0], latent_hw[1]], generator=g).double().to(device)

    with torch.inference_mode():
        _, cond = clip(torch.tensor([neg_ids, ids], device=device))
        ctx = cond.to(dtype)
        log_sigmas = discrete_sigmas().to(device).log()
        x = noise() * sigmas[0]
        for i in range(len(sigmas) - 1):
            s, s_next = sigmas[i].item(), sigmas[i + 1].item()
            t = sigma_to_t(sigmas[i].to(device), log_sigmas).item()
            xin = (x / math.sqrt(s * s + 1)).to(dtype).repeat(2, 1, 1, 1)
            eps = unet(xin, torch.full((2,), t, device=device), ctx).double()
            eps = eps[0:1] + cfg * (eps[1:2] - eps[0:1])
            denoised = x - eps * s
            if ancestral:
                up = min(s_next, (s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) ** 0.5)
                down = (s_next ** 2 - up ** 2) ** 0.5
            else:
                up, down = 0.0, s_next
            x = x + (x - denoised) / s * (down - s)
            if ancestral and s_next > 0:
                x = x + noise() * up
        return x, vae((x / 0.18215).to(dtype)).double()


def to_bytes(image):
    return ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


# ---- checks and timing --------------------------------------------------------------------------------

def compare(name, got, ref, tol):
    ref = ref.float()
    rel = ((got.float() - ref).norm() / ref.norm()).item()
    mx = (got.float() - ref).abs().max().item()
    ok = rel <= tol["rel_l2"] and mx <= tol["max_abs"]
    print(f"check {name} {'PASS' if ok else 'FAIL'} rel_l2_err={rel:.3e} max_abs_err={mx:.3e}")
    return ok


def check_clip(case):
    m = json.load(open(f"{case}/manifest.json"))
    c = m["config"]
    if not c["activation"].startswith("quick_gelu") or c.get("weight_naming", "").find("HF") < 0:
        print(f"check {case} SKIP (only SD 1.x's transformers-named QuickGELU encoder is written here)")
        return True
    net = load_clip(read_safetensors(f"{case}/weights.safetensors"), c["heads"])
    gold = read_safetensors(f"{case}/golden.safetensors")
    with torch.no_grad():
        hidden, last = net(gold["input_ids"].long())
    return compare(f"{case} last_hidden_state", last, gold["last_hidden_state"], m["tolerance_float32"]) and \
        compare(f"{case} penultimate_hidden_state", hidden[-2], gold["penultimate_hidden_state"], m["tolerance_float32"])


def check_vae(case):
    m = json.load(open(f"{case}/manifest.json"))
    net = load_vae(read_safetensors(f"{case}/weights.safetensors"))
    gold = read_safetensors(f"{case}/golden.safetensors")
    with torch.no_grad():
        out = net(gold["z"].float())
    return compare(f"{case} decoded", out, gold["decoded"], m["tolerance_float32"])


def check_pipeline(case):
    """A txt2img case of the tiny conformance model (Euler or Euler a; Karras or discrete schedule)."""
    m = json.load(open(f"{case}/manifest.json"))
    st = m["settings"]
    root = f"{case}/../.."
    comp = m["components"]
    if m["kind"] != "pipeline-txt2img" or st["sampler"] not in ("euler", "euler_ancestral") or st["clip_skip"] != 1:
        print(f"check {case} SKIP (the script runs Euler and Euler a txt2img with clip skip 1)")
        return True
    gold = read_safetensors(f"{case}/data.safetensors")
    weights = {}
    for part in ("text_encoder", "unet", "vae"):
        name = "model.safetensors" if part == "unet" else "weights.safetensors"
        weights.update(read_safetensors(f"{root}/{comp[part]}/{name}"))
    unet_manifest = json.load(open(f"{root}/{comp['unet']}/manifest.json"))
    clip_manifest = json.load(open(f"{root}/{comp['text_encoder']}/manifest.json"))
    unet = UNet(**unet_manifest["unet_config"])
    unet.load_state_dict({k[len("model.diffusion_model."):]: v.float() for k, v in weights.items()
                          if k.startswith("model.diffusion_model.")}, strict=True)
    clip = load_clip(weights, clip_manifest["config"]["heads"]).eval()
    vae = load_vae(weights).eval()
    sigmas_all = discrete_sigmas()
    steps = st["steps"]
    sigmas = karras_sigmas(steps, sigmas_all) if st["schedule"] == "karras" else uniform_sigmas(steps, sigmas_all)
    tol = m["tolerance_float32"]
    ok = compare(f"{case} sigmas", sigmas[:-1], gold["sigmas"][:-1], {"rel_l2": tol["sigmas"]["max_rel"], "max_abs": 1e9})
    latent, image = txt2img(unet.eval(), clip, vae, gold["cond_ids"][0].tolist(), gold["uncond_ids"][0].tolist(),
                            st["latent_shape"][2:], sigmas, st["cfg_scale"], st["seed"], torch.device("cpu"),
                            torch.float32, ancestral=st["sampler"] == "euler_ancestral")
    ok = compare(f"{case} latent", latent, gold["latent"], {"rel_l2": tol["latent"]["rel_l2"], "max_abs": 1e9}) and ok
    return compare(f"{case} image", image, gold["image"], tol["image"]) and ok


# the prompt as 20 token ids and the empty negative prompt: which tokens they are does not change the work
PROMPT = [49406] + list(range(320, 338)) + [49407]
NEGATIVE = [49406, 49407]


def padded(ids):
    return ids + [49407] * (77 - len(ids))


def bench(args):
    device = torch.device(args.device)
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    w = read_safetensors(args.checkpoint)
    start = time.perf_counter()
    unet = UNet(**CONFIGS["sd15"])
    unet.load_state_dict({k[len("model.diffusion_model."):]: v.float() for k, v in w.items()
                          if k.startswith("model.diffusion_model.")}, strict=True)
    unet = unet.to(device, dtype).eval()
    clip = load_clip(w, 12).to(device).eval()
    vae = load_vae(w).to(device, dtype).eval()
    load_s = time.perf_counter() - start
    times = []
    for i in range(args.warmup + args.runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        sigmas = uniform_sigmas(args.steps, discrete_sigmas())
        _, image = txt2img(unet, clip, vae, padded(PROMPT), padded(NEGATIVE), (args.size // 8, args.size // 8), sigmas,
                           args.cfg, 1234, device, dtype)
        img = to_bytes(image)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"pytorch {torch.__version__} txt2img sd15 {args.size}x{args.size} {args.steps} steps Euler a CFG {args.cfg} "
          f"{args.dtype} on {name}: {min(times):.3f} s best of {len(times)} (weights to the device {load_s:.1f} s), "
          f"picture {tuple(img.shape)}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check-clip", nargs="*", default=[])
    p.add_argument("--check-vae", nargs="*", default=[])
    p.add_argument("--check-pipeline", nargs="*", default=[])
    p.add_argument("--checkpoint")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=7.0)
    p.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    if args.check_clip or args.check_vae or args.check_pipeline:
        ok = all([check_clip(c) for c in args.check_clip] + [check_vae(c) for c in args.check_vae]
                 + [check_pipeline(c) for c in args.check_pipeline])
        raise SystemExit(0 if ok else 1)
    if not args.checkpoint:
        p.error("give --check-clip/--check-vae CASE_DIR... or --checkpoint FILE")
    bench(args)


if __name__ == "__main__":
    main()
