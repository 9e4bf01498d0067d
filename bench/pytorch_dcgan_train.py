"""PyTorch reference for issue 15's equal-wall-time comparison on photos.

Trains the DCGAN of PyTorch's example (github.com/pytorch/examples, dcgan/main.py: widths 64,
nz 100, batch 64, Adam 2e-4 with betas (0.5, 0.999), BCE with real label 1 and fake label 0,
N(0, 0.02) init) on a folder of class sub-folders of images (the CIFAR-10 JPEGs of
../shared/data) for a wall-clock budget, then writes images of the final G as PNGs, which
ganforge judges with the same shipped classifier as its own runs:

    ganforge fid --features cifar --metrics fid,kid,coverage OUT/images cifar10:TEST_DIR

The networks are pytorch_dcgan_step.py's (the example's layers at 32x32: one stage fewer than
its 64x64). `--mnist FILE` reads MNIST's IDX image file instead (gzipped, as data/mnist/ ships
it), 28x28 resized bilinearly to --size as ganforge's loader does, in grey; `--width` sets ngf = ndf
(the example's 64 by default; 32 is ganforge's `mnist` preset). Two deliberate differences from the example, both in PyTorch's favour and stated so
that nobody mistakes them: the images are decoded once into memory before the clock starts (the
example decodes JPEGs in DataLoader workers, which would take cores from the step on a 2-core
machine), and no sample grids or checkpoints are written while training.

Usage: python3 pytorch_dcgan_train.py DATA_DIR OUT [--minutes 30] [--size 32] [--classes dog]
       [--threads 2] [--n 10000] [--seed 0] [--width 64]
       python3 pytorch_dcgan_train.py --mnist train-images-idx3-ubyte.gz OUT [...]
Writes OUT/images/*.png (inference mode), OUT/images_train_mode/*.png, OUT/grid.png (8x8) and OUT/result.json (steps, seconds, config).
"""
import argparse, gzip, json, os, time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from pytorch_dcgan_step import discriminator, generator, init


def load(root, size, classes):
    names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    keep = [n for n in names if not classes or n in classes]
    if classes and len(keep) != len(classes):
        raise SystemExit(f"--classes {classes}: {root} has {names}")
    arrays = []
    for n in keep:
        folder = os.path.join(root, n)
        for f in sorted(os.listdir(folder)):
            img = Image.open(os.path.join(folder, f)).convert("RGB")
            if img.size != (size, size):
                # torchvision's Resize(size) + CenterCrop(size), as the example and ganforge do.
                s = size / min(img.size)
                img = img.resize((max(size, round(img.size[0] * s)), max(size, round(img.size[1] * s))), Image.BILINEAR)
                x0, y0 = (img.size[0] - size) // 2, (img.size[1] - size) // 2
                img = img.crop((x0, y0, x0 + size, y0 + size))
            arrays.append(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays)), keep


def load_mnist(path, size):
    # IDX: magic 0x00000803, then count, rows, cols as big-endian u32, then the pixels.
    raw = gzip.open(path).read()
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    if int.from_bytes(raw[:4], "big") != 0x803 or len(raw) != 16 + n * rows * cols:
        raise SystemExit(f"{path}: not an IDX file of images")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows, cols)
    resize = lambda a: np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return torch.from_numpy(np.stack([resize(a) for a in pixels])[:, None]), ["mnist"]


def save_png(t, path):
    # [c, h, w] in [-1, 1] -> 8-bit RGB, rounded as ganforge's sampler does.
    a = ((t.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a).save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default="", help="a folder of class folders of images")
    ap.add_argument("--mnist", default="", help="MNIST's gzipped IDX image file instead of DATA")
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--size", type=int, default=32, choices=[32, 64])
    ap.add_argument("--classes", default="", help="comma-separated class folders to keep (e.g. dog)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=10_000, help="images written at the end")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=64, help="ngf = ndf (64: the example's)")
    a = ap.parse_args()
    if bool(a.data) == bool(a.mnist):
        ap.error("give either DATA or --mnist FILE")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    classes = [c for c in a.classes.split(",") if c]
    data, kept = load_mnist(a.mnist, a.size) if a.mnist else load(a.data, a.size, classes)
    channels = data.shape[1]
    print(f"{len(data)} images of {kept} at {a.size}x{a.size}", flush=True)

    nz, batch = 100, 64
    g, d = generator(a.size, channels, a.width, nz), discriminator(a.size, channels, a.width)
    g.apply(init), d.apply(init)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(batch), torch.zeros(batch)

    budget = a.minutes * 60
    start = time.time()
    steps, epoch, last_log = 0, 0, start
    while time.time() - start < budget:
        order = torch.randperm(len(data))
        for i in range(0, len(data) - batch + 1, batch):
            real = data[order[i : i + batch]].float() / 127.5 - 1.0
            fake = g(torch.randn(batch, nz, 1, 1))
            d.zero_grad()
            loss_d = bce(d(real).view(-1), ones) + bce(d(fake.detach()).view(-1), zeros)
            loss_d.backward()
            opt_d.step()
            g.zero_grad()
            loss_g = bce(d(fake).view(-1), ones)
            loss_g.backward()
            opt_g.step()
            steps += 1
            now = time.time()
            if now - last_log > 60:
                print(f"step {steps} epoch {epoch} {now - start:.0f}s loss_d {loss_d.item():.3f} loss_g {loss_g.item():.3f}", flush=True)
                last_log = now
            if now - start >= budget:
                break
        epoch += 1
    seconds = time.time() - start

    # The example samples G in training mode (batch norm on each batch's statistics); ganforge
    # samples in inference mode (running statistics). Both are written, images/ in inference
    # mode and images_train_mode/ as the example does, so the comparison can take PyTorch's
    # better one. The same latents feed both.
    gen = torch.Generator().manual_seed(a.seed + 1)
    zs = torch.randn(a.n, nz, 1, 1, generator=gen)
    with torch.no_grad():
        for folder, train_mode in (("images", False), ("images_train_mode", True)):
            g.train(train_mode)
            os.makedirs(os.path.join(a.out, folder), exist_ok=True)
            for i in range(0, a.n, 500):
                for j, t in enumerate(g(zs[i : i + 500])):
                    save_png(t, os.path.join(a.out, folder, f"{i + j:05d}.png"))
        g.eval()
        grid = g(zs[:64]).view(8, 8, channels, a.size, a.size)
        save_png(grid.permute(2, 0, 3, 1, 4).reshape(channels, 8 * a.size, 8 * a.size), os.path.join(a.out, "grid.png"))
    result = {"steps": steps, "seconds": round(seconds, 1), "s_per_step": round(seconds / max(steps, 1), 4), "epochs": epoch,
              "images": len(data), "classes": kept, "size": a.size, "width": a.width, "threads": a.threads, "torch": torch.__version__}
    json.dump(result, open(os.path.join(a.out, "result.json"), "w"), indent=1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
