"""PyTorch reference for ganforge's per-convolution benchmark (crates/ganforge/benches/conv_ops.rs).

The layers are those of bench/pytorch_dcgan_step.py's G and D (kernel 4, no bias). For each it
times, as the Rust side does:
  fwd     the forward pass alone, under no_grad;
  fwd_dx  forward + backward with only the input requiring a gradient;
  fwd_dw  forward + backward with only the weight requiring a gradient;
the backward starting from sum(y * g) with a fixed random g. Fastest of --steps runs, as the
Rust side (a disturbance can cover all runs of one layer and move their median).

Usage: python3 pytorch_conv_ops.py CONFIG [--batch 64] [--steps 10] [--warmup 2] [--threads 2]
Prints one JSON line per layer, then one with all of them.
"""
import argparse, json, math, time

import torch
import torch.nn.functional as F

from pytorch_dcgan_step import CONFIGS


def layers(s, c, width, nz):
    n = int(math.log2(s)) - 2
    out, ch = [], width * 2 ** (n - 1)
    out.append(dict(layer="g1", transposed=True, c_in=nz, c_out=ch, size=1, stride=1, pad=0))
    size = 4
    for i in range(n):
        c_out = c if i + 1 == n else ch // 2
        out.append(dict(layer=f"g{i + 2}", transposed=True, c_in=ch, c_out=c_out, size=size, stride=2, pad=1))
        ch, size = c_out, size * 2
    c_in, ch, size = c, width, s
    for i in range(n):
        out.append(dict(layer=f"d{i + 1}", transposed=False, c_in=c_in, c_out=ch, size=size, stride=2, pad=1))
        c_in, ch, size = ch, ch * 2, size // 2
    out.append(dict(layer=f"d{n + 1}", transposed=False, c_in=c_in, c_out=1, size=4, stride=1, pad=0))
    return out


def timed(warmup, steps, f):
    for _ in range(warmup):
        f()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", choices=CONFIGS)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    s, c, width, _, _, nz = CONFIGS[a.config]
    rows = []
    for L in layers(s, c, width, nz):
        x = torch.randn(a.batch, L["c_in"], L["size"], L["size"])
        w_shape = (L["c_in"], L["c_out"], 4, 4) if L["transposed"] else (L["c_out"], L["c_in"], 4, 4)
        w = torch.randn(w_shape)
        op = F.conv_transpose2d if L["transposed"] else F.conv2d
        run = lambda x, w: op(x, w, None, L["stride"], L["pad"])
        with torch.no_grad():
            g = torch.randn(run(x, w).shape)

        def fwd():
            with torch.no_grad():
                run(x, w)

        def fwd_bwd(track_x):
            # Fresh leaves sharing x's and w's storage (no copy, as the Rust side clones handles).
            xt, wt = x.detach().requires_grad_(track_x), w.detach().requires_grad_(not track_x)
            (run(xt, wt) * g).sum().backward()
            assert (xt if track_x else wt).grad is not None

        row = dict(layer=L["layer"], op="conv_transpose2d" if L["transposed"] else "conv2d",
                   x=list(x.shape), w=list(w_shape), y=list(g.shape),
                   fwd_s=timed(a.warmup, a.steps, fwd),
                   fwd_dx_s=timed(a.warmup, a.steps, lambda: fwd_bwd(True)),
                   fwd_dw_s=timed(a.warmup, a.steps, lambda: fwd_bwd(False)))
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(json.dumps(dict(impl="pytorch", version=torch.__version__, config=a.config, batch=a.batch, layers=rows)))


if __name__ == "__main__":
    main()
