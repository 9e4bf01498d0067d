"""PyTorch reference for ganforge's training-step benchmark.

Builds the same DCGAN as ganforge (crates/ganforge/src/nets/dcgan.rs: bias-free convolutions,
batch norm in G but the output layer and in D but the input layer, ReLU/tanh in G,
LeakyReLU(0.2) in D) and times the same step (crates/ganforge/src/train/step.rs):
  G(z) once; D on the real batch and on G(z).detach(); BCE-with-logits; D's Adam step;
  then D (weights frozen for this pass) on G(z); non-saturating G loss; G's Adam step.
Adam(betas=(0.5, 0.999), eps=1e-8), lr 2e-4. Inputs are random tensors: data loading is
not part of the step.

Usage: python3 pytorch_dcgan_step.py CONFIG [--steps N] [--warmup N] [--threads T] [--device cpu|cuda] [--sample]
Prints one JSON line: config, median and mean step seconds, peak resident memory (MiB).
With --sample it times sampling instead: G alone in eval mode under no_grad, the images
brought to the host (as ganforge's sampler returns them), and reports images per second.
"""
import argparse, json, math, resource, statistics, sys, time

import torch
import torch.nn as nn

CONFIGS = {
    # name: (image_size, channels, ngf, ndf, batch, nz)
    "dcgan64": (64, 3, 64, 64, 64, 100),
    "small32": (32, 1, 32, 32, 64, 100),
    # The same DCGAN at other image sizes (BENCHMARKS.md's size/batch table).
    "dcgan32": (32, 3, 64, 64, 64, 100),
    "dcgan128": (128, 3, 64, 64, 64, 100),
}


def generator(s, c, ngf, nz):
    n = int(math.log2(s)) - 2
    w = lambda stage: ngf * 2 ** (n - 1 - stage)
    layers = [nn.ConvTranspose2d(nz, w(0), 4, 1, 0, bias=False), nn.BatchNorm2d(w(0)), nn.ReLU(True)]
    for st in range(1, n):
        layers += [nn.ConvTranspose2d(w(st - 1), w(st), 4, 2, 1, bias=False), nn.BatchNorm2d(w(st)), nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(ngf, c, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(s, c, ndf):
    n = int(math.log2(s)) - 2
    w = lambda stage: ndf * 2 ** stage
    layers = [nn.Conv2d(c, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    for st in range(1, n):
        layers += [nn.Conv2d(w(st - 1), w(st), 4, 2, 1, bias=False), nn.BatchNorm2d(w(st)), nn.LeakyReLU(0.2, inplace=True)]
    layers += [nn.Conv2d(w(n - 1), 1, 4, 1, 0, bias=False)]
    return nn.Sequential(*layers)


def init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--sample", action="store_true", help="time G's sampling, not a training step")
    ap.add_argument("--profile", action="store_true", help="also print torch.profiler's table of the timed steps (stderr)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    s, c, ngf, ndf, b, nz = CONFIGS[a.config]
    b = a.batch or b
    dev = torch.device(a.device)
    g, d = generator(s, c, ngf, nz).to(dev), discriminator(s, c, ndf).to(dev)
    g.apply(init), d.apply(init)
    if a.sample:
        return sample(a, g, b, nz, dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    bce = nn.BCEWithLogitsLoss()
    real = torch.rand(b, c, s, s, device=dev) * 2 - 1
    ones, zeros = torch.ones(b, device=dev), torch.zeros(b, device=dev)

    def step():
        z = torch.randn(b, nz, 1, 1, device=dev)
        fake = g(z)
        # update D: maximize log D(x) + log(1 - D(G(z)))
        opt_d.zero_grad(set_to_none=True)
        loss_d = bce(d(real).view(-1), ones) + bce(d(fake.detach()).view(-1), zeros)
        loss_d.backward()
        opt_d.step()
        # update G: maximize log D(G(z)), D's weights frozen for this pass
        for p in d.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        loss_g = bce(d(fake).view(-1), ones)
        loss_g.backward()
        opt_g.step()
        for p in d.parameters():
            p.requires_grad_(True)
        return loss_d.item() + loss_g.item()  # forces completion, as ganforge reads its losses

    for _ in range(a.warmup):
        step()
    times = []
    prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if a.profile else None
    if prof:
        prof.__enter__()
    for _ in range(a.steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if prof:
        prof.__exit__(None, None, None)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20), file=sys.stderr)
    out = {
        "impl": "pytorch",
        "version": torch.__version__,
        "config": a.config,
        "batch": b,
        "threads": a.threads,
        "device": a.device,
        "median_s": statistics.median(times),
        "mean_s": statistics.mean(times),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if dev.type == "cuda":
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def sample(a, g, b, nz, dev):
    """Images per second of G's forward pass at batch b, images on the host."""
    g.eval()

    def once():
        with torch.no_grad():
            return g(torch.randn(b, nz, 1, 1, device=dev)).cpu()

    for _ in range(a.warmup):
        once()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({"impl": "pytorch", "version": torch.__version__, "config": a.config, "mode": "sample", "batch": b,
                      "threads": a.threads, "device": a.device, "median_s": med, "images_per_s": b / med}))


if __name__ == "__main__":
    main()
