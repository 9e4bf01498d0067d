"""Side-by-side training-step benchmark: ganforge (burn, flex CPU backend) vs PyTorch, same
model and step, same machine, one run. Prints a table of ganforge/PyTorch ratios.

    python3 bench/compare.py [--steps 20] [--threads 2] [--configs small32,dcgan64]

ganforge is built once with `cargo bench --no-run`; each measurement is a fresh process so
that peak memory is per configuration. PyTorch is limited to --threads threads; ganforge's
thread pool is limited the same way through RAYON_NUM_THREADS.
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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default="small32,dcgan64")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu", help="ganforge device (cpu, vulkan, ...); PyTorch uses cuda for any GPU")
    a = ap.parse_args()
    exe = ganforge_bin()
    torch_dev = "cpu" if a.device == "cpu" else "cuda"
    rows = []
    for cfg in a.configs.split(","):
        common = [cfg, "--steps", str(a.steps), "--batch", str(a.batch)]
        gf = run([exe, *common, "--device", a.device], a.threads)
        pt = run([sys.executable, "bench/pytorch_dcgan_step.py", *common, "--threads", str(a.threads), "--device", torch_dev], a.threads)
        rows.append((cfg, gf, pt))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, threads {a.threads}, batch {a.batch}, "
          f"device {a.device}, PyTorch {rows[0][2]['version']}")
    print(f"{'config':10} {'ganforge s':>11} {'PyTorch s':>10} {'ratio':>6} {'gf peak MiB':>12} {'pt peak MiB':>12}")
    for cfg, gf, pt in rows:
        print(f"{cfg:10} {gf['median_s']:11.3f} {pt['median_s']:10.3f} {gf['median_s'] / pt['median_s']:6.2f} "
              f"{gf['peak_rss_mib']:12.0f} {pt['peak_rss_mib']:12.0f}")
    print(json.dumps([{"config": c, "ganforge": g, "pytorch": p} for c, g, p in rows]))


if __name__ == "__main__":
    main()
