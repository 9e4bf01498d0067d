"""Side-by-side training-step benchmark: ganforge (burn, flex CPU backend) vs PyTorch, same
model and step, same machine, one run. Prints a table of ganforge/PyTorch ratios.

    python3 bench/compare.py [--steps 20] [--threads 2] [--configs small32,dcgan64] [--batches 64]
    python3 bench/compare.py --configs dcgan32,dcgan64,dcgan128 --batches 32,128   # size x batch table
    python3 bench/compare.py --sample --configs dcgan64 --batches 1,256            # sampling images/s
    python3 bench/compare.py --bin PATH --device vulkan                            # a prebuilt binary (bench/gpu.sh)

ganforge is built once with `cargo bench --no-run` (or given with --bin); each measurement is a
fresh process so that peak memory is per configuration. PyTorch is limited to --threads threads;
ganforge's thread pool is limited the same way through RAYON_NUM_THREADS.
"""
import argparse, json, os, platform, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ganforge_bin():
    out = subprocess.run(
        ["cargo", "bench", "-p", "ganforge", "--bench", "train_step", "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "train_step" and msg.get("executable"):
            return msg["executable"]
    sys.exit("could not find the train_step bench binary")


def run(cmd, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default="small32,dcgan64")
    ap.add_argument("--batches", "--batch", default="64", help="comma-separated batch sizes")
    ap.add_argument("--sample", action="store_true", help="time sampling (G forward, images/s) instead of training steps")
    ap.add_argument("--bin", help="a prebuilt train_step bench binary (default: build it with cargo)")
    ap.add_argument("--device", default="cpu", help="ganforge device (cpu, vulkan, ...); PyTorch uses cuda for any GPU")
    a = ap.parse_args()
    exe = a.bin or ganforge_bin()
    torch_dev = "cpu" if a.device == "cpu" else "cuda"
    rows = []
    for cfg in a.configs.split(","):
        for batch in [int(b) for b in a.batches.split(",")]:
            common = [cfg, "--steps", str(a.steps), "--warmup", str(a.warmup), "--batch", str(batch)] + (["--sample"] if a.sample else [])
            gf = run([exe, *common, "--device", a.device], a.threads)
            pt = run([sys.executable, "bench/pytorch_dcgan_step.py", *common, "--threads", str(a.threads), "--device", torch_dev], a.threads)
            rows.append((cfg, batch, gf, pt))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, threads {a.threads}, "
          f"device {a.device}, PyTorch {rows[0][3]['version']}")
    if a.sample:
        print(f"{'config':10} {'batch':>5} {'ganforge img/s':>15} {'PyTorch img/s':>14} {'ratio':>6}")
        for cfg, b, gf, pt in rows:
            print(f"{cfg:10} {b:5d} {gf['images_per_s']:15.1f} {pt['images_per_s']:14.1f} {gf['images_per_s'] / pt['images_per_s']:6.2f}")
    else:
        print(f"{'config':10} {'batch':>5} {'ganforge s':>11} {'PyTorch s':>10} {'ratio':>6} {'gf peak MiB':>12} {'pt peak MiB':>12}")
        for cfg, b, gf, pt in rows:
            print(f"{cfg:10} {b:5d} {gf['median_s']:11.3f} {pt['median_s']:10.3f} {gf['median_s'] / pt['median_s']:6.2f} "
                  f"{gf['peak_rss_mib']:12.0f} {pt['peak_rss_mib']:12.0f}")
    print(json.dumps([{"config": c, "batch": b, "ganforge": g, "pytorch": p} for c, b, g, p in rows]))


if __name__ == "__main__":
    main()
