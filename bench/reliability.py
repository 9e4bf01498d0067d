#!/usr/bin/env python3
"""Hostile use of the `ganforge` binary, family by family, as the reliability issue tried it:
absurd sizes, NaN and infinity, divergence, broken images and drawings, damaged run folders,
SIGKILL at random moments, and idle connections to the server. Standard library only.

    cargo build -p ganforge-cli && python3 bench/reliability.py [--bin target/debug/ganforge] [--kills 20]

Each input must end in a clear one-line error (exit 1) or a correct result, never a panic, an
abort, a signal or a hang. Prints a table (BENCHMARKS.md's reliability section) and writes
the raw figures to bench/results/DATE-reliability.json.
"""
import argparse, datetime, json, os, random, signal, socket, struct, subprocess, sys, tempfile, time, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--set", "model.image_size=16", "--set", "dcgan.ngf=8", "--set", "dcgan.ndf=8", "--set", "train.batch_size=8",
        "--set", "train.grid_images=4", "--set", "train.checkpoint_every=2", "--set", "train.sample_every=2",
        "--set", "eval.doctor=false"]


def png(w, h, rows=None):
    """A grey PNG; `rows` bytes of pixels, or a gradient."""
    raw = b"".join(b"\0" + bytes((x * 7 + y * 3) % 256 for x in range(w)) for y in range(h)) if rows is None else rows
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def npy(shape, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(f"{s}, " for s in shape)
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + struct.pack(f"<{len(values)}f", *values)


class Bench:
    def __init__(self, binary, work):
        self.bin, self.work, self.results = binary, work, {}
        self.env = dict(os.environ, XDG_CACHE_HOME=os.path.join(work, "cache"))

    def run(self, args, timeout=120, env=None):
        try:
            p = subprocess.run([self.bin] + args, capture_output=True, text=True, timeout=timeout, env=dict(self.env, **(env or {})), stdin=subprocess.DEVNULL)
            return p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            return "timeout", "", ""

    def case(self, family, args, expect="error", needle=None, timeout=120, env=None):
        """expect 'error': exit 1 with one `error:` line (containing needle); 'ok': exit 0; 'any':
        either, as long as it is clean."""
        code, out, err = self.run(args, timeout, env)
        errors = [l for l in err.splitlines() if l.startswith("error:")]
        bad = None
        if code == "timeout":
            bad = "hung"
        elif "panicked" in err or code not in (0, 1):
            bad = f"exit {code}: {err.strip()[-300:]}"
        elif expect == "error" and (code != 1 or len(errors) != 1 or (needle and needle not in errors[0])):
            bad = f"expected an error with {needle!r}, got exit {code}: {err.strip()[-300:]}"
        elif expect == "ok" and code != 0:
            bad = f"expected success, got: {err.strip()[-300:]}"
        r = self.results.setdefault(family, {"inputs": 0, "failures": 0, "examples": []})
        r["inputs"] += 1
        if bad:
            r["failures"] += 1
            r["examples"].append({"args": args, "problem": bad})
        return code, out, err

    def train_run(self, *extra, steps="4"):
        code, out, err = self.run(["train", "--out", os.path.join(self.work, "runs"), "--steps", steps] + TINY + list(extra))
        assert code == 0, err
        return out.strip().splitlines()[-1]


def families(b, kills, rng):
    w = b.work
    runs = os.path.join(w, "runs")
    base = b.train_run()
    ckpt = os.path.join(base, "checkpoints", "step_000004")

    # 1. Sizes that scale memory.
    for s in ["dcgan.ndf=1000000", "dcgan.ngf=1000000", "dcgan.ndf=100000", "fc.hidden=100000000", "train.batch_size=4096", "biggan.ch=1024"]:
        extra = ["--set", "model.arch=\"fc\""] if s.startswith("fc.") else ["--set", "model.arch=\"biggan\"", "--set", "model.image_size=256"] if s.startswith("biggan") else []
        big = ["--set", "model.image_size=256", "--set", "model.channels=3"] if s.startswith("train.batch") else []
        b.case("memory", ["train", "--out", runs, "--steps", "2", "--set", s] + extra + big, needle="of memory")
    b.case("memory", ["train", "--out", runs, "--steps", "2", "--set", "model.nz=4096"] + TINY, expect="ok")  # large, and it fits
    b.case("memory", ["sample", "--run", base, "--n", "100000", "--out", os.path.join(w, "s")], needle="at most", env={"GANFORGE_MEMORY": "100000000"})
    b.case("memory", ["eval", "--run", base, "--metrics", "coverage", "--n", "1000000000"], needle="")

    # 2. NaN and infinity in latents, checkpoints, PyTorch files.
    for bad in [float("nan"), float("inf"), float("-inf")]:
        z = os.path.join(w, "z.npy")
        open(z, "wb").write(npy((2, 100), [0.1] * 150 + [bad] + [0.2] * 49))
        b.case("nan", ["sample", "--run", base, "--latents", z, "--out", os.path.join(w, "zout")], needle="latent row 1")
    nan_run = b.train_run()
    g = os.path.join(nan_run, "checkpoints", "step_000004", "g.safetensors")
    data = bytearray(open(g, "rb").read())
    data[-4:] = struct.pack("<f", float("nan"))
    open(g, "wb").write(bytes(data))
    b.case("nan", ["sample", "--run", nan_run, "--n", "4", "--out", os.path.join(w, "nout")], needle="NaN")
    b.case("nan", ["train", "--resume", nan_run, "--steps", "6"], needle="NaN")
    pth = os.path.join(w, "netG.pth")
    b.case("nan", ["export", "--run", base, "--out", pth], expect="ok")
    import zipfile
    src = zipfile.ZipFile(pth)
    bad_pth = os.path.join(w, "nanG.pth")
    with zipfile.ZipFile(bad_pth, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if "/data/" in info.filename and len(body) >= 4:
                body = struct.pack("<f", float("nan")) + body[4:]
            dst.writestr(info, body)
    b.case("nan", ["sample", "--from-pytorch", bad_pth, "--n", "4", "--out", os.path.join(w, "pout")], needle="NaN")

    # 3. Divergence.
    for lr in ["1e6", "1e30", "1e10"]:
        b.case("divergence", ["train", "--out", runs, "--steps", "50", "--set", f"train.lr_d={lr}", "--set", f"train.lr_g={lr}"] + TINY, needle="diverged")

    # 4. Undecodable images.
    folder = os.path.join(w, "imgs")
    os.makedirs(folder, exist_ok=True)
    for i in range(20):
        open(os.path.join(folder, f"{i:02}.png"), "wb").write(png(16, 16))
    bads = {"cut.png": png(16, 16)[:60], "zero.png": b"", "random.jpg": bytes(rng.getrandbits(8) for _ in range(500)),
            "huge.png": png(60000, 60000, rows=b"\0")[:100]}
    for name, body in bads.items():
        p = os.path.join(folder, name)
        open(p, "wb").write(body)
        b.case("images", ["data", "inspect", f"folder:{folder}", "--size", "16"], expect="ok")
        b.case("images", ["train", "--out", runs, "--steps", "2", "--data", f"folder:{folder}"] + TINY, expect="ok")
        os.remove(p)
    for name, body in bads.items():  # all at once, over the share of bad files allowed... with 4 of 24
        open(os.path.join(folder, name), "wb").write(body)
    b.case("images", ["train", "--out", runs, "--steps", "2", "--data", f"folder:{folder}"] + TINY, needle="")

    # 5. Quick, Draw! drawings with numbers past f32.
    nd = os.path.join(w, "draw.ndjson")
    for bad in ['{"drawing":[[[0,1e300,-1e300],[0,1e39,5]]]}', '{"drawing":[[[0,"x"],[1,2]]]}', '{"drawing":[[[0,3.4e38],[0,1]]]}', "{", "[1,2,3]"]:
        open(nd, "w").write(bad + "\n")
        b.case("quickdraw", ["train", "--out", runs, "--steps", "2", "--data", f"quickdraw:{nd}"] + TINY, needle="")
    open(nd, "w").write('{"drawing":[]}\n')  # an empty drawing: a blank image or a refusal, either clean
    b.case("quickdraw", ["train", "--out", runs, "--steps", "2", "--data", f"quickdraw:{nd}"] + TINY, expect="any")

    # 6. Dog annotations of another size than the photo.
    dogs = os.path.join(w, "dogs")
    for breed in ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]:
        os.makedirs(os.path.join(dogs, "Images", breed), exist_ok=True)
        os.makedirs(os.path.join(dogs, "Annotation", breed), exist_ok=True)
        for i in range(3):
            stem = f"{breed.split('-')[0]}_{i}"
            open(os.path.join(dogs, "Images", breed, stem + ".jpg"), "wb").write(png(60, 50))
            size = (10000, 10000) if i == 0 else (60, 50)
            xml = (f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size><object><name>{breed}</name>"
                   f"<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9000</xmax><ymax>9000</ymax></bndbox></object></annotation>")
            open(os.path.join(dogs, "Annotation", breed, stem), "w").write(xml)
    b.case("dogs", ["data", "inspect", f"stanford-dogs:{dogs}", "--size", "16"], expect="ok")

    # 7. Resume past the end; 9. temporaries left by a full disk; 10. killed before a checkpoint.
    past = b.train_run()
    state = os.path.join(past, "checkpoints", "step_000004", "state.json")
    s = json.load(open(state))
    s["step"] = 999999999
    json.dump(s, open(state, "w"))
    b.case("damaged runs", ["train", "--resume", past, "--steps", "25"], needle="nothing to train")
    tmp_run = b.train_run()
    os.makedirs(os.path.join(tmp_run, "checkpoints", ".tmp-step_000006-1"), exist_ok=True)
    open(os.path.join(tmp_run, ".config.toml.tmp-1"), "w").write("x")
    b.case("damaged runs", ["train", "--resume", tmp_run, "--steps", "6"], expect="ok")
    early = b.train_run()
    for c in os.listdir(os.path.join(early, "checkpoints")):
        subprocess.run(["rm", "-rf", os.path.join(early, "checkpoints", c)], check=True)
    b.case("damaged runs", ["train", "--resume", early, "--steps", "6"], expect="ok")
    for junk in ["not json", '{"step": -1}', "{}", '{"step": 1e400}']:
        r = b.train_run()
        open(os.path.join(r, "checkpoints", "step_000004", "state.json"), "w").write(junk)
        b.case("damaged runs", ["train", "--resume", r, "--steps", "6"], needle="")

    # 12. Config.
    for s in ["train.lr=1", "train.batch_size=-1", "model.image_size=48", "train.steps=\"x\"", "eval.metrics=fdi", "train.diffaugment=flip", "novalue", "eval.features=resnet"]:
        b.case("config", ["train", "--out", runs, "--set", s], needle="")

    # 8. SIGKILL at random moments, then resume: the log holds each step once, the run finishes.
    kill_run = None
    survived = 0
    for k in range(kills):
        args = (["train", "--resume", kill_run, "--steps", "300"] if kill_run else
                ["train", "--out", os.path.join(w, "kill"), "--steps", "300", "--set", "train.log_every=5", "--set", "train.checkpoint_every=5"] + TINY)
        p = subprocess.Popen([b.bin] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=b.env)
        time.sleep(rng.uniform(0.05, 1.5))
        p.send_signal(signal.SIGKILL)
        p.wait()
        if kill_run is None and os.path.isdir(os.path.join(w, "kill")) and os.listdir(os.path.join(w, "kill")):
            kill_run = os.path.join(w, "kill", sorted(os.listdir(os.path.join(w, "kill")))[0])
        if kill_run:
            code, _, err = b.run(["doctor", kill_run, "--json"])
            survived += code == 0 or "no checkpoint" in err
    if os.path.isdir(os.path.join(kill_run, "checkpoints", "step_000300")):
        b.results.setdefault("sigkill", {"inputs": 0, "failures": 0, "examples": []})["inputs"] += 1  # a session finished it
    else:
        b.case("sigkill", ["train", "--resume", kill_run, "--steps", "300"], expect="ok")
    steps = [json.loads(l)["step"] for l in open(os.path.join(kill_run, "metrics.jsonl")) if '"loss_d"' in l]
    b.results["sigkill"]["kill points"] = kills
    b.results["sigkill"]["kill points survived"] = survived
    if steps != sorted(set(steps)):
        b.results["sigkill"]["failures"] += 1
        b.results["sigkill"]["examples"].append({"problem": f"steps in metrics.jsonl: {steps}"})

    # 11. The server: idle and half-sent connections, a normal request among them.
    port = 18000 + rng.randrange(1000)
    srv = subprocess.Popen([b.bin, "serve", "--run", base, "--addr", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=b.env)
    time.sleep(2)
    held = []
    for i in range(300):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            if i % 2:
                s.sendall(b"GET /api/model HTTP/1.1\r\nHost: x\r\n")  # half a request
            held.append(s)
        except OSError:
            break
    t = time.time()
    ok = False
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=20)
        c.sendall(b"GET /api/generate?seed=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ok = c.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        pass
    normal_s = time.time() - t
    time.sleep(7)  # past the 5 s header timeout
    closed = 0
    for s in held:
        try:
            s.settimeout(0.2)
            closed += s.recv(1) == b""
        except (socket.timeout, OSError):
            pass
    srv.send_signal(signal.SIGINT)
    srv.wait(timeout=10)
    b.results["server"] = {"inputs": len(held) + 1, "failures": int(not ok) + (len(held) - closed),
                           "connections held": len(held), "closed by timeout": closed, "normal request ok": ok, "normal request s": round(normal_s, 2),
                           "examples": []}
    open_srv = subprocess.Popen([b.bin, "serve", "--run", base, "--addr", f"0.0.0.0:{port + 1}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=b.env, text=True)
    time.sleep(2)
    open_srv.send_signal(signal.SIGKILL)
    err = open_srv.communicate()[1]
    b.results["server"]["inputs"] += 1
    if "reachable" not in err and "network" not in err:
        b.results["server"]["failures"] += 1
        b.results["server"]["examples"].append({"problem": "no warning for 0.0.0.0: " + err[-200:]})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "ganforge"))
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        b = Bench(os.path.abspath(a.bin), work)
        families(b, a.kills, random.Random(a.seed))
    date = datetime.date.today().isoformat()
    out = os.path.join(ROOT, "bench", "results", f"{date}-reliability.json")
    json.dump({"date": date, "binary": a.bin, "kills": a.kills, "seed": a.seed, "families": b.results}, open(out, "w"), indent=1)
    print("| family | inputs tried | failures | notes |\n|---|---:|---:|---|")
    for fam, r in b.results.items():
        notes = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("inputs", "failures", "examples"))
        print(f"| {fam} | {r['inputs']} | {r['failures']} | {notes} |")
    for fam, r in b.results.items():
        for e in r["examples"]:
            print(f"FAILED {fam}: {e}", file=sys.stderr)
    print(f"raw figures: {out}")


if __name__ == "__main__":
    main()
