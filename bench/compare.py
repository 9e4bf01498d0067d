"""Side-by-side training-step benchmark: ganforge (burn, flex CPU backend) vs PyTorch, same
model and step, same machine, one run. Prints a table of ganforge/PyTorch ratios.

    python3 bench/compare.py [--steps 20] [--threads 2] [--configs small32,dcgan64] [--batches 64]
    python3 bench/compare.py --configs dcgan32,dcgan64,dcgan128 --batches 32,128   # size x batch table
    python3 bench/compare.py --sample --configs dcgan64 --batches 1,256            # sampling images/s
    python3 bench/compare.py --bin PATH --device vulkan                            # a prebuilt binary (bench/gpu.sh)
    python3 bench/compare.py --ops --configs dcgan64                               # each convolution, and its share of the step

ganforge is built once with `cargo bench --no-run` (or given with --bin); each measurement is a
fresh process so that peak memory is per configuration. PyTorch is limited to --threads threads;
ganforge's thread pool is limited the same way through RAYON_NUM_THREADS.
"""
import argparse, json, os, platform, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ganforge_bin(bench="train_step"):
    out = subprocess.run(
        ["cargo", "bench", "-p", "ganforge", "--bench", bench, "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == bench and msg.get("executable"):
            return msg["executable"]
    sys.exit(f"could not find the {bench} bench binary")


def op_counts(layer):
    """How many times one DCGAN training step (train/step.rs) runs each pass of a layer:
    (forward, input gradient, weight gradient). D runs forward on the real batch, on G(z)
    detached and on G(z) for G's loss; its weight gradients come from the first two; its input
    gradients are needed below every layer in all three, and through its first layer only in
    G's pass. G runs once forward and once backward; z, its first input, needs no gradient."""
    if layer["layer"].startswith("d"):
        return 3, (1 if layer["layer"] == "d1" else 3), 2
    return 1, (0 if layer["layer"] == "g1" else 1), 1


def conv_seconds_per_step(layers):
    """Seconds of a step spent in convolutions, from one layer's fwd / fwd+dx / fwd+dw times."""
    total = 0.0
    for L in layers:
        nf, ndx, ndw = op_counts(L)
        total += nf * L["fwd_s"] + ndx * max(L["fwd_dx_s"] - L["fwd_s"], 0.0) + ndw * max(L["fwd_dw_s"] - L["fwd_s"], 0.0)
    return total


def conv_flops_per_step(layers):
    """Floating-point operations of a step's convolution passes: each pass (forward, input
    gradient, weight gradient) multiplies and adds once per weight tap per output of the
    forward (a transposed convolution: per input), so all three cost the forward's 2 * MACs."""
    total = 0
    for L in layers:
        (b, ci, hi, wi), w, (_, co, ho, wo) = L["x"], L["w"], L["y"]
        taps = w[2] * w[3]
        macs = b * co * ho * wo * ci * taps if L["op"] == "conv2d" else b * ci * hi * wi * co * taps
        total += 2 * macs * sum(op_counts(L))
    return total


def ops_main(a, configs, batches):
    """Each convolution of the step side by side, and the step itself, in one run."""
    ops_exe, step_exe = ganforge_bin("conv_ops"), a.bin or ganforge_bin()
    out = []
    for cfg in configs:
        for batch in batches:
            common = [cfg, "--steps", str(a.steps), "--warmup", str(a.warmup), "--batch", str(batch)]
            gf, pt = run([ops_exe, *common], a.threads), run([sys.executable, "bench/pytorch_conv_ops.py", *common, "--threads", str(a.threads)], a.threads)
            gs = run([step_exe, *common, "--device", "cpu"], a.threads)
            ps = run([sys.executable, "bench/pytorch_dcgan_step.py", *common, "--threads", str(a.threads), "--device", "cpu"], a.threads)
            print(f"{cfg}, batch {batch}: seconds (ratio ganforge/PyTorch)")
            print(f"{'layer':6} {'op':17} {'fwd':>16} {'fwd+dx':>16} {'fwd+dw':>16}")
            for g, p in zip(gf["layers"], pt["layers"]):
                assert g["layer"] == p["layer"] and g["y"] == p["y"], (g, p)
                cells = [f"{g[k]:.4f} ({g[k] / p[k]:4.2f})" for k in ("fwd_s", "fwd_dx_s", "fwd_dw_s")]
                print(f"{g['layer']:6} {g['op']:17} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16}")
            gc, pc = conv_seconds_per_step(gf["layers"]), conv_seconds_per_step(pt["layers"])
            print(f"step {gs['median_s']:.3f} s vs {ps['median_s']:.3f} s ({gs['median_s'] / ps['median_s']:.2f}); "
                  f"of it convolutions {gc:.3f} s vs {pc:.3f} s ({gc / pc:.2f}), the rest {gs['median_s'] - gc:.3f} s vs {ps['median_s'] - pc:.3f} s")
            out.append({"config": cfg, "batch": batch, "ganforge": gf, "pytorch": pt, "ganforge_step": gs, "pytorch_step": ps,
                        "ganforge_conv_s_per_step": gc, "pytorch_conv_s_per_step": pc})
    m = machine()
    for row in out:
        row["machine"] = m
    print(json.dumps(out))


def machine():
    """The CPU model and the vector extensions that decide which kernels run (every raw file
    names them: a ratio from an AVX-512 machine says nothing of an AVX2 one)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    vector = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni") if f in flags]
    return {"cpu": model, "vector_extensions": vector, "cpus": os.cpu_count(),
            "ganforge_kernels": "burn's ops" if os.environ.get("GANFORGE_CPU_KERNELS") == "0" else "own"}


def run(cmd, threads, **extra_env):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), **extra_env)
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
    ap.add_argument("--ops", action="store_true", help="time each convolution's passes (benches/conv_ops.rs) and the step")
    ap.add_argument("--burn-too", action="store_true", help="also time ganforge on burn's ops (GANFORGE_CPU_KERNELS=0) in the same run")
    a = ap.parse_args()
    if a.ops:
        return ops_main(a, a.configs.split(","), [int(b) for b in a.batches.split(",")])
    exe = a.bin or ganforge_bin()
    torch_dev = "cpu" if a.device == "cpu" else "cuda"
    rows = []
    for cfg in a.configs.split(","):
        for batch in [int(b) for b in a.batches.split(",")]:
            common = [cfg, "--steps", str(a.steps), "--warmup", str(a.warmup), "--batch", str(batch)] + (["--sample"] if a.sample else [])
            gf = run([exe, *common, "--device", a.device], a.threads)
            if a.burn_too:
                gf["burn_ops"] = run([exe, *common, "--device", a.device], a.threads, GANFORGE_CPU_KERNELS="0")
            pt = run([sys.executable, "bench/pytorch_dcgan_step.py", *common, "--threads", str(a.threads), "--device", torch_dev], a.threads)
            rows.append((cfg, batch, gf, pt))
    m = machine()
    print(f"machine: {m['cpu']} ({', '.join(m['vector_extensions'])}), {m['cpus']} cpus, threads {a.threads}, "
          f"device {a.device}, PyTorch {rows[0][3]['version']}, ganforge kernels: {m['ganforge_kernels']}")
    if a.sample:
        print(f"{'config':10} {'batch':>5} {'ganforge img/s':>15} {'PyTorch img/s':>14} {'ratio':>6}")
        for cfg, b, gf, pt in rows:
            print(f"{cfg:10} {b:5d} {gf['images_per_s']:15.1f} {pt['images_per_s']:14.1f} {gf['images_per_s'] / pt['images_per_s']:6.2f}")
            if "burn_ops" in gf:
                bo = gf["burn_ops"]
                print(f"{'  on burn':10} {b:5d} {bo['images_per_s']:15.1f} {pt['images_per_s']:14.1f} {bo['images_per_s'] / pt['images_per_s']:6.2f}")
    else:
        print(f"{'config':10} {'batch':>5} {'ganforge s':>11} {'PyTorch s':>10} {'ratio':>6} {'gf peak MiB':>12} {'pt peak MiB':>12}")
        for cfg, b, gf, pt in rows:
            print(f"{cfg:10} {b:5d} {gf['median_s']:11.3f} {pt['median_s']:10.3f} {gf['median_s'] / pt['median_s']:6.2f} "
                  f"{gf['peak_rss_mib']:12.0f} {pt['peak_rss_mib']:12.0f}")
            if "burn_ops" in gf:
                bo = gf["burn_ops"]
                print(f"{'  on burn':10} {b:5d} {bo['median_s']:11.3f} {pt['median_s']:10.3f} {bo['median_s'] / pt['median_s']:6.2f} "
                      f"{bo['peak_rss_mib']:12.0f}")
    print(json.dumps([{"config": c, "batch": b, "ganforge": g, "pytorch": p, "machine": m} for c, b, g, p in rows]))


if __name__ == "__main__":
    main()
