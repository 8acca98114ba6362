#!/usr/bin/env python3
"""Trains lmic's audio Llama in PyTorch, on a GPU, from the chunks
`lmic train --dump-chunks PREFIX --mapping cascade` wrote.

`lmic train` (candle, CPU) makes about one step of 32 chunks a second on
two cores; a GPU makes thousands. This script is the same network (Hugging
Face Llama layout: RMSNorm, rotate-half rotary embeddings, SwiGLU, untied
head, the start token first) and the same examples (each record is one chunk
compression models: inputs are the start token, with `--carry P` the last P
tokens of the chunk before it as the encoder carries them, and its first
len-1 tokens; targets its len tokens), so the weights it writes load in lmic
as they are (a model trained with --carry P says so in its config.json:
"lmic_carry_tokens": P, "max_position_embeddings": context + P + 1).
`--check MODEL_F16.safetensors REF.f32` proves the network is lmic's before
any training: it loads those weights and compares its logits on the first
records of --val with what `cargo run --example chunk_logits` computed.

    python3 scripts/train-torch.py --train P.train.bin --val P.val.bin \
        --out RUN --minutes 8 [--hidden 128 --layers 4 --heads 4 \
        --intermediate 384] [--init models/audio-v2/model.safetensors] [--carry 16]

Writes RUN/model.safetensors (f16, what lmic ships; the best validation
step), RUN/log.txt and with --checkpoint RUN/checkpoint.pt (f32 + optimiser). Validation is
in bits per character (token), as `lmic train` reports it.
"""
import argparse
import json
import lzma
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F

VOCAB = 130
START = 128
EPS = 1e-5
THETA = 10000.0


# safetensors by hand (the format is a length, a JSON header and the raw
# little-endian tensors), so the script needs nothing beyond torch and numpy.
ST_DTYPES = {"F16": (np.float16, torch.float16), "F32": (np.float32, torch.float32),
             "BF16": (None, torch.bfloat16)}


def load_file(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        buf = raw[8 + n + s:8 + n + e]
        npd, td = ST_DTYPES[v["dtype"]]
        if npd is None:
            t = torch.frombuffer(bytearray(buf), dtype=torch.int16).view(torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(buf, dtype=npd).copy())
        out[k] = t.reshape(v["shape"])
    return out


def save_file(tensors, path):
    head, blobs, at = {}, [], 0
    for k in sorted(tensors):
        a = tensors[k].detach().cpu().contiguous().numpy()
        name = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}[a.dtype]
        b = a.tobytes()
        head[k] = {"dtype": name, "shape": list(a.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def read_records(path, context, carry):
    """Records [len u16][carried u8][carried bytes][len bytes] -> (tokens
    [n, carry + context] uint8: each row the last `carry` (at most) carried
    tokens then the chunk's, lens [n], carried [n]); `.xz` files are
    decompressed first."""
    if path.endswith(".xz"):
        with lzma.open(path) as f:
            b = np.frombuffer(f.read(), dtype=np.uint8)
    else:
        b = np.fromfile(path, dtype=np.uint8)
    offs, lens, cars = [], [], []
    at = 0
    while at < len(b):
        n, c = int(b[at]) | (int(b[at + 1]) << 8), int(b[at + 2])
        k = min(c, carry)
        offs.append(at + 3 + c - k)
        lens.append(n)
        cars.append(k)
        at += 3 + c + n
    lens, cars = np.array(lens, dtype=np.int64), np.array(cars, dtype=np.int64)
    assert lens.max() <= context, f"{path}: a record of {lens.max()} > context {context}"
    toks = np.zeros((len(lens), carry + context), dtype=np.uint8)
    for i, (o, n, k) in enumerate(zip(offs, lens, cars)):
        toks[i, :k + n] = b[o:o + k + n]
    return torch.from_numpy(toks), torch.from_numpy(lens), torch.from_numpy(cars)


class RMSNorm(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS)
        return (y * self.weight.float()).to(x.dtype)


class Block(torch.nn.Module):
    def __init__(self, h, heads, inter):
        super().__init__()
        self.heads = heads
        self.input_layernorm = RMSNorm(h)
        self.post_attention_layernorm = RMSNorm(h)
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = lin(h, h), lin(h, h), lin(h, h), lin(h, h)
        self.gate_proj, self.up_proj, self.down_proj = lin(h, inter), lin(h, inter), lin(inter, h)

    def forward(self, x, cos, sin):
        b, t, h = x.shape
        hd = h // self.heads
        a = self.input_layernorm(x)
        q, k, v = (p(a).view(b, t, self.heads, hd).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o_proj(o.transpose(1, 2).reshape(b, t, h))
        m = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(m)) * self.up_proj(m))


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


class Llama(torch.nn.Module):
    def __init__(self, h, layers, heads, inter, context):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(VOCAB, h)
        self.layers = torch.nn.ModuleList(Block(h, heads, inter) for _ in range(layers))
        self.norm = RMSNorm(h)
        self.lm_head = torch.nn.Linear(h, VOCAB, bias=False)
        hd = h // heads
        inv = 1.0 / THETA ** (torch.arange(0, hd // 2, dtype=torch.float64) * 2 / hd)
        ang = torch.arange(context + 1, dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.embed_tokens(ids)
        cos, sin = self.cos[:t].to(x.dtype), self.sin[:t].to(x.dtype)
        for l in self.layers:
            x = l(x, cos, sin)
        return self.lm_head(self.norm(x))

    # Hugging Face names, as lmic loads them.
    def hf_state(self):
        out = {}
        for k, v in self.state_dict().items():
            if k.startswith("lm_head"):
                name = k
            elif ".layers." in "." + k:
                parts = k.split(".")
                l, rest = parts[1], parts[2:]
                sub = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
                       "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp",
                       "down_proj": "mlp"}.get(rest[0])
                name = f"model.layers.{l}." + (f"{sub}." if sub else "") + ".".join(rest)
            else:
                name = "model." + k
            out[name] = v
        return out

    def load_hf(self, state):
        mine = self.hf_state()
        missing = set(mine) - set(state)
        assert not missing, f"missing tensors: {sorted(missing)[:5]}"
        inv = {}
        for (k, _), hf in zip(self.state_dict().items(), mine):
            inv[k] = state[hf].float()
        self.load_state_dict(inv)


def init_weights(model, layers):
    resid = 0.02 / math.sqrt(2 * layers)
    for n, p in model.named_parameters():
        if n.endswith("layernorm.weight") or n == "norm.weight":
            torch.nn.init.ones_(p)
        elif n.endswith("o_proj.weight") or n.endswith("down_proj.weight"):
            torch.nn.init.normal_(p, 0.0, resid)
        else:
            torch.nn.init.normal_(p, 0.0, 0.02)


def batch(data, idx, device):
    """Inputs (the start token, then the carried tokens and all but the last
    of the chunk's), targets and mask (the chunk's tokens only: carried ones
    are context, not coded) of the records `idx` of `data` (read_records),
    built where the data is and moved to `device`."""
    toks, lens, cars = data
    i = idx.to(toks.device)
    x, n, c = toks[i].long(), lens[i], cars[i]
    start = torch.full((len(idx), 1), START, dtype=torch.long, device=x.device)
    ids = torch.cat([start, x[:, :-1]], dim=1)
    at = torch.arange(x.shape[1], device=x.device)[None, :]
    mask = (at >= c[:, None]) & (at < (c + n)[:, None])
    return tuple(t.to(device, non_blocking=True) for t in (ids, x, mask))


def loss_of(model, ids, tg, mask, dtype):
    with torch.autocast(device_type=ids.device.type, dtype=dtype, enabled=dtype != torch.float32):
        logits = model(ids)
    lp = F.cross_entropy(logits.float().reshape(-1, VOCAB), tg.reshape(-1), reduction="none")
    m = mask.reshape(-1).float()
    return (lp * m).sum(), m.sum()


@torch.no_grad()
def evaluate(model, data, bs, device, dtype):
    model.eval()
    nats, n = 0.0, 0.0
    count = len(data[1])
    for s in range(0, count, bs):
        idx = torch.arange(s, min(s + bs, count))
        l, c = loss_of(model, *batch(data, idx, device), dtype)
        nats += l.item()
        n += c.item()
    model.train()
    return nats / max(n, 1) / math.log(2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train")
    ap.add_argument("--val", required=True)
    ap.add_argument("--out")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=384)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--carry", type=int, default=0,
                    help="tokens of the previous chunk each chunk sees first (the model's lmic_carry_tokens)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--eval-seconds", type=float, default=60.0, help="validate (and save) this often")
    ap.add_argument("--checkpoint", action="store_true", help="also save RUN/checkpoint.pt")
    ap.add_argument("--val-max", type=int, default=20000, help="validation records used")
    ap.add_argument("--init", help="start from these weights (HF names, any dtype)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's choice)")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--check", nargs=2, metavar=("WEIGHTS", "REF_F32"),
                    help="only compare logits with lmic's (chunk_logits) and exit")
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    carry = 0 if a.check else a.carry
    model = Llama(a.hidden, a.layers, a.heads, a.intermediate, a.context + carry).to(device)
    val = read_records(a.val, a.context, carry)

    if a.check:
        model.load_hf(load_file(a.check[0]))
        ref = np.fromfile(a.check[1], dtype=np.float32).reshape(-1, VOCAB)
        worst, at = 0.0, 0
        with torch.no_grad():
            for i in range(len(val[1])):
                if at >= len(ref):
                    break
                n = int(val[1][i])
                ids, _, _ = batch(val, torch.tensor([i]), device)
                lg = model(ids[:, :n]).float().cpu().numpy().reshape(-1, VOCAB)
                worst = max(worst, float(np.abs(lg - ref[at:at + n]).max()))
                at += n
        scale = float(np.abs(ref).max())
        print(f"check: {at} positions, largest |torch - lmic| = {worst:.3e} (logits up to {scale:.2f})")
        if not worst <= 1e-3 * max(1.0, scale):
            raise SystemExit("check: the networks differ")
        return

    os.makedirs(a.out, exist_ok=True)
    log_f = open(os.path.join(a.out, "log.txt"), "a")

    def log(s):
        print(s, flush=True)
        log_f.write(s + "\n")
        log_f.flush()

    train = read_records(a.train, a.context, carry)
    # A fixed sample of every source, not the first files' chunks.
    pick = torch.randperm(len(val[1]), generator=torch.Generator().manual_seed(0))[:a.val_max]
    val = tuple(t[pick] for t in val)
    if a.init:
        model.load_hf(load_file(a.init))
        log(f"starting from {a.init}")
    else:
        init_weights(model, a.layers)
    params = sum(p.numel() for p in model.parameters())
    log(f"{len(train[1])} training chunks ({int(train[1].sum())} tokens), {len(val[1])} validation chunks; "
        f"{a.layers} layers, hidden {a.hidden}, {a.heads} heads, mlp {a.intermediate}: {params} parameters; "
        f"{carry} carried tokens; {device}")
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": other, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95))
    fwd = torch.compile(model) if a.compile else model
    budget = a.minutes * 60.0
    t0 = time.time()
    g = torch.Generator().manual_seed(a.seed)
    step, best, recent, next_eval = 0, float("inf"), [], a.eval_seconds
    # The training set lives on the GPU: batches are gathered there.
    train_dev = tuple(t.to(device) for t in train)
    while True:
        el = time.time() - t0
        p = min(1.0, el / budget)
        lr = a.lr * (step + 1) / a.warmup if step < a.warmup else \
            a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))
        for grp in opt.param_groups:
            grp["lr"] = lr
        idx = torch.randint(0, len(train[1]), (a.batch,), generator=g)
        ids, tg, mask = batch(train_dev, idx, device)
        l, c = loss_of(fwd, ids, tg, mask, dtype)
        loss = l / c
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        recent.append(loss.detach())
        done = el >= budget
        if el >= next_eval or done:
            next_eval = el + a.eval_seconds
            tr = torch.stack(recent).mean().item() / math.log(2)
            recent = []
            v = evaluate(model, val, 512, device, dtype)
            mark = ""
            if v < best:
                best = v
                half = {k: t.detach().to(torch.float16).cpu().contiguous() for k, t in model.hf_state().items()}
                save_file(half, os.path.join(a.out, "model.safetensors"))
                mark = " (saved)"
            log(f"step {step:>7} {el:7.0f}s lr {lr:.2e} train {tr:.4f} val {v:.4f} bits/char{mark}")
            if a.checkpoint:
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step},
                           os.path.join(a.out, "checkpoint.pt"))
        if done:
            break
    log(f"done: {step} steps in {time.time() - t0:.0f}s, best validation {best:.4f} bits/char")


if __name__ == "__main__":
    main()
