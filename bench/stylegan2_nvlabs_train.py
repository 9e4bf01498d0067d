"""Trains NVlabs' own StyleGAN2 networks with ganforge's `stylegan2` preset, as a reference run.

The question it answers: does a StyleGAN2 of this size (widths 16 to 64, w 128, 8 mapping
layers, 32x32 MNIST, batch 64, Adam 2e-3 with betas (0, 0.99), R1 gamma 0.01 every 16 steps,
style mixing 0.9, EMA 0.998) train on MNIST when the networks and the loss are NVlabs' code,
or is a failure of `ganforge train --preset stylegan2` ganforge's own? Same data, same
settings, same step structure as ganforge (D updates, then G on the same fake batch), run
side by side on the same CPU; the networks come from a checkout of NVlabs/stylegan2-ada-pytorch
(`--nvlabs DIR`, CPU reference paths of their custom ops). The loop is written here, after
their training/loss.py: non-saturating logistic loss, lazy R1 with the penalty's weight times
the interval, EMA of G.

Writes under --out: grid.png (8x8 of G_ema with constant noise), G_ema.pth (NVlabs' state dict
of G_ema, which `ganforge sample --from-pytorch G_ema.pth --arch stylegan2` loads),
progress.jsonl (losses, and the spread of G's images across the batch: a collapse shows as a
spread near 0).

Run: python3 bench/stylegan2_nvlabs_train.py --nvlabs /path/to/stylegan2-ada-pytorch \
        --data data/mnist --out /tmp/nv-run --minutes 20 --threads 1
"""

import argparse
import copy
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_mnist(folder, size):
    with gzip.open(os.path.join(folder, "train-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    x = torch.from_numpy(raw.copy()).float()
    # ganforge's loader: bilinear resize of the short side (28 -> 32), bytes, then [-1, 1].
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).round().clamp(0, 255)
    return x / 127.5 - 1.0


def save_grid(images, path, cols=8):
    from PIL import Image

    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()  # [n, c, s, s]
    n, c, s, _ = x.shape
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * (s + 2) + 2, cols * (s + 2) + 2, c), np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[2 + r * (s + 2):2 + r * (s + 2) + s, 2 + q * (s + 2):2 + q * (s + 2) + s] = x[i].transpose(1, 2, 0)
    Image.fromarray(grid[..., 0] if c == 1 else grid).save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nvlabs", required=True, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--minutes", type=float, default=0, help="stop after this wall time (0 = only --steps)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--gamma", type=float, default=0.01)
    ap.add_argument("--mapping-layers", type=int, default=8)
    ap.add_argument("--style-mixing", type=float, default=0.9)
    ap.add_argument("--mbstd-group", type=int, default=4)
    ap.add_argument("--channel-base", type=int, default=512)
    ap.add_argument("--channel-max", type=int, default=64)
    ap.add_argument("--beta1", type=float, default=0.0)
    ap.add_argument("--log-every", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    sys.path.insert(0, args.nvlabs)
    from training.networks import Discriminator, Generator  # NVlabs' code

    os.makedirs(args.out, exist_ok=True)
    size, nz, every = 32, 128, 16
    reals = load_mnist(args.data, size)
    common = dict(channel_base=args.channel_base, channel_max=args.channel_max, num_fp16_res=0, conv_clamp=None)
    G = Generator(z_dim=nz, c_dim=0, w_dim=128, img_resolution=size, img_channels=1,
                  mapping_kwargs=dict(num_layers=args.mapping_layers), synthesis_kwargs=common)
    D = Discriminator(c_dim=0, img_resolution=size, img_channels=1, architecture="resnet",
                      epilogue_kwargs=dict(mbstd_group_size=args.mbstd_group), **common)
    G_ema = copy.deepcopy(G).eval()
    opt_g = torch.optim.Adam(G.parameters(), lr=args.lr, betas=(args.beta1, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr, betas=(args.beta1, 0.99), eps=1e-8)
    c = torch.zeros([args.batch, 0])
    fixed_z = torch.randn(64, nz)
    log = open(os.path.join(args.out, "progress.jsonl"), "w")

    def run_g(z):
        ws = G.mapping(z, c[: len(z)])
        if args.style_mixing > 0:
            cutoff = int(torch.randint(1, ws.shape[1], []))
            if float(torch.rand([])) < args.style_mixing:
                ws[:, cutoff:] = G.mapping(torch.randn_like(z), c[: len(z)], skip_w_avg_update=True)[:, cutoff:]
        return G.synthesis(ws)

    start = time.time()
    step = 0
    while step < args.steps and not (args.minutes and time.time() - start > args.minutes * 60):
        step += 1
        real = reals[torch.randint(0, len(reals), [args.batch])]
        fake = run_g(torch.randn(args.batch, nz))

        # D: softplus(D(fake)) + softplus(-D(real)), and every 16th step R1 at 16 times its weight.
        lazy = step % every == 0
        real_in = real.detach().requires_grad_(lazy)
        real_logits = D(real_in, c)
        fake_logits = D(fake.detach(), c)
        loss_d = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        total = loss_d
        if lazy:
            (g,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
            total = total + g.square().sum([1, 2, 3]).mean() * (args.gamma / 2) * every
        opt_d.zero_grad(set_to_none=True)
        total.backward()
        opt_d.step()

        # G: softplus(-D(G(z))) on the same fake batch.
        for p in D.parameters():
            p.requires_grad_(False)
        loss_g = F.softplus(-D(fake, c)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)

        # EMA of G from step 200 (ganforge's g_ema_start), a copy before.
        beta = 0.998 if step >= 200 else 0.0
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.copy_(p.lerp(pe, beta))
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)

        if step % args.log_every == 0 or step == 1:
            spread = float(fake.detach().std(0).mean())
            rec = dict(step=step, seconds=round(time.time() - start, 1), loss_d=float(loss_d), loss_g=float(loss_g),
                       d_real=float(torch.sigmoid(real_logits).mean()), d_fake=float(torch.sigmoid(fake_logits).mean()),
                       spread=spread)
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()

    with torch.no_grad():
        save_grid(G_ema(fixed_z, c[:64], noise_mode="const"), os.path.join(args.out, "grid.png"))
        save_grid(G(fixed_z, c[:64], noise_mode="const"), os.path.join(args.out, "grid_raw.png"))
    torch.save({k: v.detach().clone() for k, v in G_ema.state_dict().items()}, os.path.join(args.out, "G_ema.pth"))
    print(json.dumps(dict(done=step, seconds=round(time.time() - start, 1))))


if __name__ == "__main__":
    main()
