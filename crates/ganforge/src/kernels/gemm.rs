//! Single-precision matrix product with micro-kernels for AVX-512, for AVX2 with FMA, and a
//! portable one, chosen at run time (the BLIS scheme: Van Zee & van de Geijn, "BLIS: A Framework
//! for Rapidly Instantiating BLAS Functionality", 2015).
//!
//! Why ganforge has its own: convolution passes are most of a DCGAN step, and they are products.
//! The `gemm` crate (burn-flex's) is fast, but its blocking depends on the shape, so one image's
//! output could change with the batch it is made in; here every element of C is summed in the
//! same order (KC-deep panels in turn, each in one micro-kernel) whatever m, n and the thread
//! count, so an image does not depend on its batch and runs repeat bit for bit.
//!
//! Scheme: C (m x n) = A (m x k) * B (k x n) [+ C]. B is packed in slivers of KC rows by NR
//! columns, A in slivers of MR rows by KC columns, both zero-padded to whole tiles, so that the
//! micro-kernel streams two contiguous buffers and keeps an MR x NR tile of C in registers.
//! Work is split into tasks of MC rows by a group of column slivers, enough of them to keep
//! every thread busy when one side is thin (a weight gradient's m is a layer's channels).

use std::sync::OnceLock;

use rayon::prelude::*;

/// Depth of a packed panel: a KC x NR B sliver stays in L1 while A slivers stream by.
const KC: usize = 256;
/// Rows of A packed per block (a multiple of every MR): 120 x 256 floats (120 KiB) stay in L2.
const MC: usize = 120;
/// Columns of B packed per panel: 256 x 2048 floats (2 MiB), for the L2/L3.
const NC: usize = 2048;
/// The largest MR x NR of the micro-kernels (an edge tile's local buffer).
const MAX_TILE: usize = 12 * 32;

/// A matrix view: element (i, j) lives at `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        MatRef { data, row_stride: cols, col_stride: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns (no copy).
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        MatRef { data, row_stride: 1, col_stride: cols }
    }

    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// Whether (rows - 1, cols - 1) lies inside the slice.
    fn covers(&self, rows: usize, cols: usize) -> bool {
        (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// The instruction set a product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 16-lane FMA, a 12 x 32 tile in 24 of the 32 zmm registers.
    Avx512,
    /// 8-lane FMA, a 6 x 16 tile in 12 of the 16 ymm registers.
    Avx2,
    /// Plain Rust (any CPU, aarch64 included): a 4 x 8 tile the compiler vectorizes as it can.
    Portable,
}

impl Isa {
    /// Every instruction set this CPU can run, best first (tests run each).
    pub fn available() -> Vec<Isa> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                out.push(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                out.push(Isa::Avx2);
            }
        }
        out.push(Isa::Portable);
        out
    }

    /// The name `GANFORGE_ISA` takes and the benches print.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

/// The instruction set products run on: the best this CPU has, or a lower one named by
/// `GANFORGE_ISA` (avx2, portable: to measure or test a path on a CPU that has a better one; a
/// name the CPU cannot run is ignored with a warning).
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let available = Isa::available();
        match std::env::var("GANFORGE_ISA") {
            Ok(name) => available.iter().copied().find(|i| i.name() == name).unwrap_or_else(|| {
                eprintln!("warning: GANFORGE_ISA={name} is not one this CPU runs ({available:?}); using {:?}", available[0]);
                available[0]
            }),
            Err(_) => available[0],
        }
    })
}

/// `c = a * b`, or `c += a * b` when `accumulate`; `c` is row-major m x n (`c.len() == m * n`),
/// on the instruction set of [`isa`].
///
/// Panics if a view reaches past its slice (a caller's bug, not user input).
pub fn sgemm(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], accumulate: bool) {
    sgemm_on(isa(), m, n, k, a, b, c, accumulate)
}

/// [`sgemm`] on a given instruction set, which the CPU must run (one of [`Isa::available`]).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_on(isa: Isa, m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], accumulate: bool) {
    assert!(Isa::available().contains(&isa), "{isa:?} does not run on this CPU");
    if empty(m, n, k, c, accumulate) {
        return;
    }
    assert!(a.covers(m, k) && b.covers(k, n), "a view reaches past its slice");
    match isa {
        Isa::Avx512 => blocked::<Avx512>(m, n, k, a, b, c, accumulate),
        Isa::Avx2 => blocked::<Avx2>(m, n, k, a, b, c, accumulate),
        Isa::Portable => blocked::<Portable>(m, n, k, a, b, c, accumulate),
    }
}

/// Checks C's length and does the whole product when a dimension is 0 (C untouched, or zeroed
/// when k = 0 and not accumulating); false when there is a product to compute. Both products
/// start here, so that neither indexes an empty view.
fn empty(m: usize, n: usize, k: usize, c: &mut [f32], accumulate: bool) -> bool {
    assert_eq!(c.len(), m * n, "C must be m x n");
    if k == 0 && !accumulate {
        c.fill(0.0);
    }
    m == 0 || n == 0 || k == 0
}

/// The `gemm` crate's product (burn-flex's), for comparison in the benches.
pub fn crate_gemm(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], accumulate: bool) {
    if empty(m, n, k, c, accumulate) {
        return;
    }
    assert!(a.covers(m, k) && b.covers(k, n), "a view reaches past its slice");
    let parallelism = if m * n * k >= 192 * 192 * 192 { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: the asserts above keep every index the views describe inside their slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Raw pointer to C shared by the tasks: each task writes only its own rows and columns.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
// SAFETY: tasks write disjoint tiles of C (see `blocked`), so sharing the pointer is sound.
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}

impl CPtr {
    /// The element `offset` floats in (a method, so closures capture the Sync wrapper whole).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// A micro-kernel: an MR x NR tile of C from a kc x MR sliver of A and a kc x NR sliver of B.
trait Micro {
    const MR: usize;
    const NR: usize;
    /// `pack_a` / `pack_b` at this kernel's MR / NR (constants, so that a sliver's row is
    /// copied with vector moves rather than a call to memcpy per handful of floats).
    fn pack_a(a: MatRef, ic: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]);
    fn pack_b(b: MatRef, pc: usize, kc: usize, j0: usize, cols: usize, sliver: &mut [f32]);
    /// SAFETY: `a` holds kc * MR floats, `b` kc * NR, and the MR x NR tile at `c` (row stride
    /// `ldc`) is valid for reads and writes; the CPU runs this kernel's instructions.
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool);
}

thread_local! {
    /// Each thread's packed block of A (MC x KC), kept between products: a fresh zeroed buffer
    /// per task cost more than some small products themselves. No task calls a product inside
    /// another, so the borrow is never nested.
    static APACK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn blocked<K: Micro>(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], accumulate: bool) {
    let cp = CPtr(c.as_mut_ptr());
    let row_blocks = m.div_ceil(MC);
    let mut bpack = vec![0.0f32; KC * NC.min(n.div_ceil(K::NR) * K::NR)];
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        let slivers = nc.div_ceil(K::NR);
        // Column groups: enough tasks for two per thread when the rows alone do not give them
        // (a weight gradient's m is a layer's channels).
        let group_slivers = slivers.div_ceil(slivers.min((2 * rayon::current_num_threads()).div_ceil(row_blocks)).max(1));
        let groups = slivers.div_ceil(group_slivers);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            // B's panel is packed once, sliver by sliver in parallel, and shared by all tasks.
            bpack
                .par_chunks_mut(kc * K::NR)
                .take(slivers)
                .enumerate()
                .for_each(|(s, sliver)| K::pack_b(b, pc, kc, jc + s * K::NR, K::NR.min(nc - s * K::NR), sliver));
            // After the first panel of k, every tile adds to what the earlier panels wrote.
            let acc = accumulate || pc > 0;
            let bpack = &bpack[..];
            (0..row_blocks * groups).into_par_iter().for_each(|task| {
                APACK.with_borrow_mut(|apack| {
                    apack.resize(MC * KC, 0.0); // once per thread: stale values are overwritten
                    let (ic, s0) = ((task / groups) * MC, (task % groups) * group_slivers);
                    let mc = MC.min(m - ic);
                    K::pack_a(a, ic, mc, pc, kc, apack);
                    for s in s0..slivers.min(s0 + group_slivers) {
                        let jr = s * K::NR;
                        for ir in (0..mc).step_by(K::MR) {
                            let (rows, cols) = (K::MR.min(mc - ir), K::NR.min(nc - jr));
                            // SAFETY: packed panels hold whole MR x kc and kc x NR slivers; the
                            // tile (ic + ir.., jc + jr..) is inside C and owned by this task
                            // (tasks split C into disjoint row blocks x column groups).
                            unsafe {
                                tile::<K>(
                                    kc,
                                    apack.as_ptr().add(ir * kc),
                                    bpack.as_ptr().add(jr * kc),
                                    cp.at((ic + ir) * n + jc + jr),
                                    n,
                                    rows,
                                    cols,
                                    acc,
                                )
                            };
                        }
                    }
                })
            });
        }
    }
}

/// Packs B[pc..pc+kc, j0..j0+cols] as one sliver of NR columns: for each p, the NR values
/// B[pc + p, j0 ..], zero past the last column.
fn pack_b<const NR: usize>(b: MatRef, pc: usize, kc: usize, j0: usize, cols: usize, sliver: &mut [f32]) {
    let rows = sliver[..kc * NR].chunks_exact_mut(NR);
    if b.col_stride == 1 && cols == NR {
        for (p, row) in rows.enumerate() {
            let src: &[f32; NR] = b.data[(pc + p) * b.row_stride + j0..][..NR].try_into().expect("NR floats");
            *<&mut [f32; NR]>::try_from(row).expect("NR floats") = *src;
        }
    } else if b.row_stride == 1 && b.col_stride != 1 {
        // B is a transposed view: each of its columns is contiguous along p.
        for j in 0..NR {
            let dst = sliver[..kc * NR].chunks_exact_mut(NR);
            if j < cols {
                let col = &b.data[(j0 + j) * b.col_stride + pc..][..kc];
                dst.zip(col).for_each(|(d, &v)| d[j] = v);
            } else {
                dst.for_each(|d| d[j] = 0.0);
            }
        }
    } else {
        for (p, row) in rows.enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if j < cols { b.at(pc + p, j0 + j) } else { 0.0 };
            }
        }
    }
}

/// Packs A[ic..ic+mc, pc..pc+kc] as slivers of MR rows: sliver s holds, for each p, the MR
/// values A[ic + s*MR .., pc + p], zero past m.
fn pack_a<const MR: usize>(a: MatRef, ic: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]) {
    for (s, sliver) in out.chunks_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
        let i0 = ic + s * MR;
        let rows = MR.min(ic + mc - i0);
        if a.row_stride == 1 && rows == MR {
            // A is a transposed view: a sliver's row at p is contiguous in memory.
            for (p, dst) in sliver[..kc * MR].chunks_exact_mut(MR).enumerate() {
                let src: &[f32; MR] = a.data[(pc + p) * a.col_stride + i0..][..MR].try_into().expect("MR floats");
                *<&mut [f32; MR]>::try_from(dst).expect("MR floats") = *src;
            }
            continue;
        }
        for i in 0..MR {
            let dst = sliver[..kc * MR].chunks_exact_mut(MR);
            if i >= rows {
                dst.for_each(|d| d[i] = 0.0);
            } else if a.col_stride == 1 {
                // Row i of the sliver is read along k: contiguous when A is row-major.
                let row = &a.data[(i0 + i) * a.row_stride + pc..][..kc];
                dst.zip(row).for_each(|(d, &v)| d[i] = v);
            } else {
                dst.enumerate().for_each(|(p, d)| d[i] = a.at(i0 + i, pc + p));
            }
        }
    }
}

/// One MR x NR tile of C from packed slivers; edge tiles go through a local buffer, through the
/// same micro-kernel (so an edge element is summed exactly as an inner one).
///
/// SAFETY: `a` holds kc x MR floats, `b` kc x NR, C's `rows` x `cols` corner at `c` (row stride
/// `ldc`) is valid for writes, and the CPU runs K's instructions.
#[allow(clippy::too_many_arguments)]
unsafe fn tile<K: Micro>(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, rows: usize, cols: usize, acc: bool) {
    if rows == K::MR && cols == K::NR {
        unsafe { K::run(kc, a, b, c, ldc, acc) };
        return;
    }
    let mut local = [0.0f32; MAX_TILE];
    if acc {
        for i in 0..rows {
            for j in 0..cols {
                local[i * K::NR + j] = unsafe { *c.add(i * ldc + j) };
            }
        }
    }
    unsafe { K::run(kc, a, b, local.as_mut_ptr(), K::NR, acc) };
    for i in 0..rows {
        for j in 0..cols {
            unsafe { *c.add(i * ldc + j) = local[i * K::NR + j] };
        }
    }
}

struct Avx512;
struct Avx2;
struct Portable;

impl Micro for Avx512 {
    const MR: usize = 12;
    const NR: usize = 32;
    fn pack_a(a: MatRef, ic: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]) {
        pack_a::<12>(a, ic, mc, pc, kc, out)
    }
    fn pack_b(b: MatRef, pc: usize, kc: usize, j0: usize, cols: usize, sliver: &mut [f32]) {
        pack_b::<32>(b, pc, kc, j0, cols, sliver)
    }
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
        #[cfg(target_arch = "x86_64")]
        unsafe {
            micro_avx512(kc, a, b, c, ldc, acc)
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (kc, a, b, c, ldc, acc);
            unreachable!("Isa::available offers AVX-512 only on x86_64");
        }
    }
}

impl Micro for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    fn pack_a(a: MatRef, ic: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]) {
        pack_a::<6>(a, ic, mc, pc, kc, out)
    }
    fn pack_b(b: MatRef, pc: usize, kc: usize, j0: usize, cols: usize, sliver: &mut [f32]) {
        pack_b::<16>(b, pc, kc, j0, cols, sliver)
    }
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
        #[cfg(target_arch = "x86_64")]
        unsafe {
            micro_avx2(kc, a, b, c, ldc, acc)
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (kc, a, b, c, ldc, acc);
            unreachable!("Isa::available offers AVX2 only on x86_64");
        }
    }
}

impl Micro for Portable {
    const MR: usize = 4;
    const NR: usize = 8;
    fn pack_a(a: MatRef, ic: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]) {
        pack_a::<4>(a, ic, mc, pc, kc, out)
    }
    fn pack_b(b: MatRef, pc: usize, kc: usize, j0: usize, cols: usize, sliver: &mut [f32]) {
        pack_b::<8>(b, pc, kc, j0, cols, sliver)
    }
    unsafe fn run(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
        // SAFETY: the caller's contract (Micro::run) bounds every read and write below.
        let (a, b) = unsafe { (std::slice::from_raw_parts(a, kc * 4), std::slice::from_raw_parts(b, kc * 8)) };
        let mut r = [[0.0f32; 8]; 4];
        for (ap, bp) in a.chunks_exact(4).zip(b.chunks_exact(8)) {
            for (ri, &ai) in r.iter_mut().zip(ap) {
                for (x, &bj) in ri.iter_mut().zip(bp) {
                    *x = ai.mul_add(bj, *x);
                }
            }
        }
        for (i, ri) in r.iter().enumerate() {
            for (j, &v) in ri.iter().enumerate() {
                let dst = unsafe { &mut *c.add(i * ldc + j) };
                *dst = if acc { *dst + v } else { v };
            }
        }
    }
}

/// The 12 x 32 micro-kernel: for each p, two 16-lane loads of B's row and 12 broadcasts of A's
/// column feed 24 fused multiply-adds into accumulators that never leave the registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
    use std::arch::x86_64::*;
    let mut r = [[_mm512_setzero_ps(); 2]; 12];
    for p in 0..kc {
        let (b0, b1) = unsafe { (_mm512_loadu_ps(b.add(p * 32)), _mm512_loadu_ps(b.add(p * 32 + 16))) };
        let ap = unsafe { a.add(p * 12) };
        for (i, ri) in r.iter_mut().enumerate() {
            let ai = _mm512_set1_ps(unsafe { *ap.add(i) });
            ri[0] = _mm512_fmadd_ps(ai, b0, ri[0]);
            ri[1] = _mm512_fmadd_ps(ai, b1, ri[1]);
        }
    }
    for (i, ri) in r.iter().enumerate() {
        let row = unsafe { c.add(i * ldc) };
        let (mut v0, mut v1) = (ri[0], ri[1]);
        if acc {
            unsafe {
                v0 = _mm512_add_ps(v0, _mm512_loadu_ps(row));
                v1 = _mm512_add_ps(v1, _mm512_loadu_ps(row.add(16)));
            }
        }
        unsafe {
            _mm512_storeu_ps(row, v0);
            _mm512_storeu_ps(row.add(16), v1);
        }
    }
}

/// The 6 x 16 micro-kernel: for each p, two 8-lane loads of B's row and 6 broadcasts of A's
/// column feed 12 fused multiply-adds (12 accumulators + 2 B vectors + 1 broadcast = 15 of the
/// 16 ymm registers).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
    use std::arch::x86_64::*;
    let mut r = [[_mm256_setzero_ps(); 2]; 6];
    for p in 0..kc {
        let (b0, b1) = unsafe { (_mm256_loadu_ps(b.add(p * 16)), _mm256_loadu_ps(b.add(p * 16 + 8))) };
        let ap = unsafe { a.add(p * 6) };
        for (i, ri) in r.iter_mut().enumerate() {
            let ai = _mm256_set1_ps(unsafe { *ap.add(i) });
            ri[0] = _mm256_fmadd_ps(ai, b0, ri[0]);
            ri[1] = _mm256_fmadd_ps(ai, b1, ri[1]);
        }
    }
    for (i, ri) in r.iter().enumerate() {
        let row = unsafe { c.add(i * ldc) };
        let (mut v0, mut v1) = (ri[0], ri[1]);
        if acc {
            unsafe {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row.add(8)));
            }
        }
        unsafe {
            _mm256_storeu_ps(row, v0);
            _mm256_storeu_ps(row.add(8), v1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product by its definition, in f64.
    fn naive(m: usize, n: usize, k: usize, a: MatRef, b: MatRef) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a.at(i, p) as f64 * b.at(p, j) as f64).sum::<f64>() as f32;
            }
        }
        c
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        // A small LCG: varied signs and magnitudes, the same on every machine.
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// Shapes hitting every edge: below one tile, not multiples of MR/NR, several KC panels,
    /// several MC blocks (parallel), more than NC columns, a thin m with a deep k (a weight
    /// gradient's); on every instruction set this CPU runs.
    #[test]
    fn matches_the_definition_on_edge_shapes() {
        for isa in Isa::available() {
            eprintln!("kernels::gemm on {isa:?}");
            for &(m, n, k) in
                &[(1, 1, 1), (5, 7, 3), (12, 32, 256), (13, 33, 257), (130, 70, 600), (250, 2100, 40), (37, 5, 1000), (3, 48, 3000)]
            {
                for transposed in [false, true] {
                    let (av, bv) = (values(m * k, 1), values(k * n, 2));
                    let a = if transposed { MatRef::transposed(&av, m) } else { MatRef::row_major(&av, k) };
                    let b = if transposed { MatRef::transposed(&bv, k) } else { MatRef::row_major(&bv, n) };
                    let want = naive(m, n, k, a, b);
                    for accumulate in [false, true] {
                        let start = values(m * n, 3);
                        let mut c = if accumulate { start.clone() } else { vec![f32::NAN; m * n] };
                        sgemm_on(isa, m, n, k, a, b, &mut c, accumulate);
                        for (idx, (&got, &w)) in c.iter().zip(&want).enumerate() {
                            let w = if accumulate { w + start[idx] } else { w };
                            let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                            assert!((got - w).abs() <= tol, "{isa:?} {m}x{n}x{k} t={transposed} acc={accumulate} at {idx}: {got} vs {w}");
                        }
                    }
                }
            }
        }
    }

    /// A row of C does not depend on how many rows are computed with it, bit for bit: what
    /// makes an image independent of its batch.
    #[test]
    fn a_row_does_not_depend_on_the_others() {
        let (n, k) = (70, 700);
        let (av, bv) = (values(300 * k, 6), values(k * n, 7));
        for isa in Isa::available() {
            let all = {
                let mut c = vec![0.0; 300 * n];
                sgemm_on(isa, 300, n, k, MatRef::row_major(&av, k), MatRef::row_major(&bv, n), &mut c, false);
                c
            };
            for m in [1, 5, 121] {
                let mut c = vec![0.0; m * n];
                sgemm_on(isa, m, n, k, MatRef::row_major(&av[..m * k], k), MatRef::row_major(&bv, n), &mut c, false);
                assert_eq!(c[..], all[..m * n], "{isa:?}: the first {m} rows differ from the same rows among 300");
            }
        }
    }

    #[test]
    fn agrees_with_the_gemm_crate() {
        let (m, n, k) = (200, 96, 300);
        let (av, bv) = (values(m * k, 4), values(k * n, 5));
        let (a, b) = (MatRef::row_major(&av, k), MatRef::transposed(&bv, k));
        let mut theirs = vec![0.0; m * n];
        crate_gemm(m, n, k, a, b, &mut theirs, false);
        for isa in Isa::available() {
            let mut ours = vec![0.0; m * n];
            sgemm_on(isa, m, n, k, a, b, &mut ours, false);
            let worst = ours.iter().zip(&theirs).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-4, "{isa:?}: largest difference {worst}");
        }
    }

    #[test]
    fn empty_depth_clears_or_keeps() {
        for product in [sgemm, crate_gemm] {
            let mut c = vec![3.0; 6];
            product(2, 3, 0, MatRef::row_major(&[], 0), MatRef::row_major(&[], 3), &mut c, true);
            assert_eq!(c, vec![3.0; 6]);
            product(2, 3, 0, MatRef::row_major(&[], 0), MatRef::row_major(&[], 3), &mut c, false);
            assert_eq!(c, vec![0.0; 6]);
            // No rows: nothing to compute, and no view is indexed.
            product(0, 3, 4, MatRef::row_major(&[], 4), MatRef::row_major(&[0.0; 12], 3), &mut [], false);
        }
    }
}
