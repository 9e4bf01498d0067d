"""The doctor's checkerboard score (doctor.rs, checkerboard_score) of sample grids and of real
CIFAR-10 photos, in NumPy, for calibrating the detector on real runs:

    python3 bench/checkerboard_scores.py runs/00000-cifar10/samples/step_*.png   # 64 tiles of 32x32 (S=, N= to change)
    python3 bench/checkerboard_scores.py real DIR     # 64 photos of DIR/*/*.jpg (CIFAR-10's train/ folders)

The baseline is the median of the non-peak high band, as in doctor.rs.
"""
import numpy as np, glob, sys, math, os
from PIL import Image
def score(imgs, period):
    n,h,w = imgs.shape
    m = min(n,64); mean = np.zeros((h,w))
    for im in imgs[:m]:
        mean += np.abs(np.fft.fft2(im - im.mean()))**2 / m
    u = np.arange(h)[:,None]*np.ones((1,w),int); v = np.ones((h,1),int)*np.arange(w)[None,:]
    peak = ((u % (h//period))==0) & ((v % (w//period))==0); peak[0,0]=False
    d = lambda k,n: np.minimum(k, n-k)/n
    band = (~peak) & (np.maximum(d(u,h), d(v,w)) >= 0.25)
    b = np.sort(mean[band]); base = max(b[len(b)//2], 1e-12)
    return mean[peak].mean()/base
def tiles(path, s=32, n=64):
    g = np.asarray(Image.open(path).convert('RGB'), dtype=np.float64).mean(-1)/127.5-1
    cols = math.ceil(math.sqrt(n)); out=[]
    for i in range(n):
        ox, oy = 2+(i%cols)*(s+2), 2+(i//cols)*(s+2)
        if oy+s <= g.shape[0]: out.append(g[oy:oy+s, ox:ox+s])
    return np.stack(out)
if sys.argv[1] == 'real':
    files = sorted(glob.glob(os.path.join(sys.argv[2], '*/*.jpg')))
    rng = np.random.default_rng(0); pick = rng.choice(len(files), 64, replace=False)
    imgs = np.stack([np.asarray(Image.open(files[i]).convert('RGB'), dtype=np.float64).mean(-1)/127.5-1 for i in pick])
    print('real p2 %.1f p4 %.1f' % (score(imgs,2), score(imgs,4)))
else:
    for f in sys.argv[1:]:
        t = tiles(f, int(os.environ.get('S', 32)), int(os.environ.get('N', 64)))
        print(os.path.basename(f), len(t), 'p2 %.1f p4 %.1f' % (score(t,2), score(t,4)))
