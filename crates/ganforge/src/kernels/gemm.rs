//! Single-precision matrix product with an AVX-512 micro-kernel (the BLIS scheme: Van Zee & van
//! de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS Functionality", 2015).
//!
//! Why ganforge has its own: convolution passes are 78% of a DCGAN-64 step (BENCHMARKS.md, "Each
//! convolution"), and burn-flex runs them as im2col + the `gemm` crate, whose kernel on this
//! machine is the AVX2 one (8 lanes) while PyTorch's oneDNN uses AVX-512 (16 lanes).
//!
//! Scheme: C (m x n) = A (m x k) * B (k x n) [+ C]. B is packed in panels of KC rows by NR
//! columns, A in slivers of MR rows by KC columns, both zero-padded to whole tiles, so that the
//! micro-kernel streams two contiguous buffers and keeps a 12 x 32 tile of C in 24 of the 32
//! zmm registers. Blocks of MC rows run in parallel on rayon's pool.
//! Without AVX-512 at run time, it falls back to the `gemm` crate (what burn-flex uses).

use rayon::prelude::*;

/// Rows of C per micro-tile: 12 x 2 accumulators + 2 B vectors + 1 broadcast = 27 registers.
const MR: usize = 12;
/// Columns of C per micro-tile: two 16-lane vectors.
const NR: usize = 32;
/// Depth of a packed panel: a 256 x 32 B sliver (32 KiB) stays in L1 while A slivers stream by.
const KC: usize = 256;
/// Rows of A packed per block (a multiple of MR): 120 x 256 floats (120 KiB) stay in L2.
const MC: usize = 120;
/// Columns of B packed per panel: 256 x 2048 floats (2 MiB), for the L2/L3.
const NC: usize = 2048;

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
}

/// Whether this CPU runs the AVX-512 kernel.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[allow(unreachable_code)]
    false
}

/// `c = a * b`, or `c += a * b` when `accumulate`; `c` is row-major m x n (`c.len() == m * n`).
///
/// Panics if a view reaches past its slice (a caller's bug, not user input).
pub fn sgemm(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], accumulate: bool) {
    if !has_avx512() {
        crate_gemm(m, n, k, a, b, c, accumulate);
    } else if !empty(m, n, k, c, accumulate) {
        blocked(m, n, k, a, b, c, accumulate);
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

/// The `gemm` crate's product (burn-flex's), for CPUs without AVX-512 and for comparison.
pub fn crate_gemm(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], accumulate: bool) {
    if empty(m, n, k, c, accumulate) {
        return;
    }
    let last = |v: &MatRef, r: usize, cols: usize| (r - 1) * v.row_stride + (cols - 1) * v.col_stride;
    assert!(last(&a, m, k) < a.data.len() && last(&b, k, n) < b.data.len(), "a view reaches past its slice");
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

/// Raw pointer to C shared by the row blocks: each block writes only its own rows.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}

impl CPtr {
    /// The element `offset` floats in (a method, so closures capture the Sync wrapper whole).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

fn blocked(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32], accumulate: bool) {
    let cp = CPtr(c.as_mut_ptr());
    let mut bpack = vec![0.0f32; KC * NC.min(n.div_ceil(NR) * NR)];
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            pack_b(b, pc, kc, jc, nc, &mut bpack);
            // After the first panel of k, every block adds to what the earlier panels wrote.
            let acc = accumulate || pc > 0;
            let bpack = &bpack[..];
            (0..m.div_ceil(MC)).into_par_iter().for_each_init(
                || vec![0.0f32; MC * KC],
                |apack, block| {
                    let ic = block * MC;
                    let mc = MC.min(m - ic);
                    pack_a(a, ic, mc, pc, kc, apack);
                    for jr in (0..nc).step_by(NR) {
                        for ir in (0..mc).step_by(MR) {
                            let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
                            // SAFETY: packed panels hold whole MR x kc and kc x NR slivers; the
                            // tile (ic + ir.., jc + jr..) is inside C and owned by this block.
                            unsafe {
                                tile(
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
                },
            );
        }
    }
}

/// Packs B[pc..pc+kc, jc..jc+nc] as slivers of NR columns: sliver s holds, for each p, the NR
/// values B[pc + p, jc + s*NR ..], zero past n.
fn pack_b(b: MatRef, pc: usize, kc: usize, jc: usize, nc: usize, out: &mut [f32]) {
    for (s, sliver) in out.chunks_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
        let j0 = jc + s * NR;
        let cols = NR.min(jc + nc - j0);
        for p in 0..kc {
            let row = &mut sliver[p * NR..(p + 1) * NR];
            if b.col_stride == 1 {
                let start = (pc + p) * b.row_stride + j0;
                row[..cols].copy_from_slice(&b.data[start..start + cols]);
            } else {
                for (j, v) in row[..cols].iter_mut().enumerate() {
                    *v = b.at(pc + p, j0 + j);
                }
            }
            row[cols..].fill(0.0);
        }
    }
}

/// Packs A[ic..ic+mc, pc..pc+kc] as slivers of MR rows: sliver s holds, for each p, the MR
/// values A[ic + s*MR .., pc + p], zero past m.
fn pack_a(a: MatRef, ic: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]) {
    for (s, sliver) in out.chunks_mut(kc * MR).take(mc.div_ceil(MR)).enumerate() {
        let i0 = ic + s * MR;
        let rows = MR.min(ic + mc - i0);
        for i in 0..MR {
            if i < rows {
                // Row i of the sliver is read along k: contiguous when A is row-major.
                for p in 0..kc {
                    sliver[p * MR + i] = a.at(i0 + i, pc + p);
                }
            } else {
                for p in 0..kc {
                    sliver[p * MR + i] = 0.0;
                }
            }
        }
    }
}

/// One MR x NR tile of C from packed slivers; edge tiles go through a local buffer.
///
/// SAFETY: `a` holds kc x MR floats, `b` kc x NR, and C's `rows` x `cols` corner at `c` (row
/// stride `ldc`) is valid for writes.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, rows: usize, cols: usize, acc: bool) {
    if rows == MR && cols == NR {
        unsafe { micro_avx512(kc, a, b, c, ldc, acc) };
        return;
    }
    let mut local = [0.0f32; MR * NR];
    if acc {
        for i in 0..rows {
            for j in 0..cols {
                local[i * NR + j] = unsafe { *c.add(i * ldc + j) };
            }
        }
    }
    unsafe { micro_avx512(kc, a, b, local.as_mut_ptr(), NR, acc) };
    for i in 0..rows {
        for j in 0..cols {
            unsafe { *c.add(i * ldc + j) = local[i * NR + j] };
        }
    }
}

/// The 12 x 32 micro-kernel: for each p, two 16-lane loads of B's row and 12 broadcasts of A's
/// column feed 24 fused multiply-adds into accumulators that never leave the registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro_avx512(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, acc: bool) {
    use std::arch::x86_64::*;
    let mut r = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kc {
        let (b0, b1) = unsafe { (_mm512_loadu_ps(b.add(p * NR)), _mm512_loadu_ps(b.add(p * NR + 16))) };
        let ap = unsafe { a.add(p * MR) };
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

/// Never called: `sgemm` takes this path only where `has_avx512()` is true.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn micro_avx512(_: usize, _: *const f32, _: *const f32, _: *mut f32, _: usize, _: bool) {
    unreachable!("the AVX-512 kernel runs only on x86_64")
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
    /// several MC blocks (parallel), and more than NC columns.
    #[test]
    fn matches_the_definition_on_edge_shapes() {
        for &(m, n, k) in &[(1, 1, 1), (5, 7, 3), (12, 32, 256), (13, 33, 257), (130, 70, 600), (250, 2100, 40), (37, 5, 1000)] {
            for transposed in [false, true] {
                let (av, bv) = (values(m * k, 1), values(k * n, 2));
                let a = if transposed { MatRef::transposed(&av, m) } else { MatRef::row_major(&av, k) };
                let b = if transposed { MatRef::transposed(&bv, k) } else { MatRef::row_major(&bv, n) };
                let want = naive(m, n, k, a, b);
                for accumulate in [false, true] {
                    let start = values(m * n, 3);
                    let mut c = if accumulate { start.clone() } else { vec![f32::NAN; m * n] };
                    sgemm(m, n, k, a, b, &mut c, accumulate);
                    for (idx, (&got, &w)) in c.iter().zip(&want).enumerate() {
                        let w = if accumulate { w + start[idx] } else { w };
                        let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                        assert!((got - w).abs() <= tol, "{m}x{n}x{k} t={transposed} acc={accumulate} at {idx}: {got} vs {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn agrees_with_the_gemm_crate() {
        let (m, n, k) = (200, 96, 300);
        let (av, bv) = (values(m * k, 4), values(k * n, 5));
        let (a, b) = (MatRef::row_major(&av, k), MatRef::transposed(&bv, k));
        let (mut ours, mut theirs) = (vec![0.0; m * n], vec![0.0; m * n]);
        sgemm(m, n, k, a, b, &mut ours, false);
        crate_gemm(m, n, k, a, b, &mut theirs, false);
        let worst = ours.iter().zip(&theirs).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "largest difference {worst}");
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
