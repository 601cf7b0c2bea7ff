//! SSE2 (the x86-64 baseline) and AVX2 micro-kernels of the wide driver (`frame::wide`); their
//! plain-Rust twins are in `generic::wide`.

#[cfg(feature = "std")]
use crate::kernels::generic::wide::nibbles_scalar;
#[cfg(feature = "std")]
use crate::kernels::params::LANES;

/// [`outer_pixel`] for channels `c0..c0 + 4 * G` with SSE2 (the x86-64 baseline).
#[inline(always)]
pub(crate) fn outer_sse2<const G: usize>(
    a: &[i16],
    wt: &[i16],
    nb: usize,
    c0: usize,
    bias: &[i32],
    acc: &mut [i32],
) {
    use core::arch::x86_64::*;
    let th = a.len() / 2;
    let (wt, bias, acc) = (
        &wt[..2 * th * nb],
        &bias[c0..c0 + 4 * G],
        &mut acc[c0..c0 + 4 * G],
    );
    // SAFETY: SSE2 is part of the x86-64 baseline. Reads `a[2t..2t + 2]` for `t < th`,
    // `wt[2 (t nb + c0 + 4 g)..+8]` for `g < G` (`c0 + 4 G <= nb`, inside `wt[..2 th nb]`),
    // `bias[4 g..4 g + 4]`; writes `acc[4 g..4 g + 4]`; all within the slices checked above.
    unsafe {
        let mut s = [_mm_setzero_si128(); G];
        for (g, r) in s.iter_mut().enumerate() {
            *r = _mm_loadu_si128(bias.as_ptr().add(4 * g).cast());
        }
        for t in 0..th {
            let x = _mm_set1_epi32(a.as_ptr().add(2 * t).cast::<i32>().read_unaligned());
            let wr = wt.as_ptr().add(2 * (t * nb + c0));
            for (g, r) in s.iter_mut().enumerate() {
                let v = _mm_loadu_si128(wr.add(8 * g).cast());
                *r = _mm_add_epi32(*r, _mm_madd_epi16(x, v));
            }
        }
        for (g, r) in s.iter().enumerate() {
            _mm_storeu_si128(acc.as_mut_ptr().add(4 * g).cast(), *r);
        }
    }
}

/// [`outer_pixel`] for `nb = 8 * G` with `G` accumulators in registers.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn outer_avx2<const G: usize>(a: &[i16], wt: &[i16], bias: &[i32], acc: &mut [i32]) {
    use core::arch::x86_64::*;
    let th = a.len() / 2;
    let nb = 8 * G;
    let (wt, bias, acc) = (&wt[..2 * th * nb], &bias[..nb], &mut acc[..nb]);
    // SAFETY: reads `a[2t..2t + 2]` for `t < th = a.len() / 2`, `wt[2 (t nb + 8 g)..+16]` for
    // `g < G` (inside `wt[..2 th nb]`), `bias[8 g..8 g + 8]`; writes `acc[8 g..8 g + 8]`; all
    // within the slices checked above. Unaligned loads and stores.
    unsafe {
        let mut s = [_mm256_setzero_si256(); G];
        for (g, r) in s.iter_mut().enumerate() {
            *r = _mm256_loadu_si256(bias.as_ptr().add(8 * g).cast());
        }
        for t in 0..th {
            let x = _mm256_set1_epi32(a.as_ptr().add(2 * t).cast::<i32>().read_unaligned());
            let wr = wt.as_ptr().add(2 * t * nb);
            for (g, r) in s.iter_mut().enumerate() {
                let v = _mm256_loadu_si256(wr.add(16 * g).cast());
                *r = _mm256_add_epi32(*r, _mm256_madd_epi16(x, v));
            }
        }
        for (g, r) in s.iter().enumerate() {
            _mm256_storeu_si256(acc.as_mut_ptr().add(8 * g).cast(), *r);
        }
    }
}

/// [`nibbles_scalar`] with `PSHUFB` on the 16 first centroids, 32 weights per step.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn nibbles_avx2(idx: &[u8], lut: &[i8; 256], dst: &mut [i16]) {
    use core::arch::x86_64::*;
    let full = idx.len() / 16;
    let dst = &mut dst[..2 * idx.len()];
    // SAFETY: reads `lut[..16]`, `idx[16 i..16 i + 16]` and writes `dst[32 i..32 i + 32]` for
    // `i < full = idx.len() / 16`, all within the slices (`dst.len() == 2 * idx.len()` checked
    // by the slicing above); unaligned loads and stores.
    unsafe {
        let tbl = _mm_loadu_si128(lut.as_ptr().cast());
        let m = _mm_set1_epi8(0x0f);
        for i in 0..full {
            let v = _mm_loadu_si128(idx.as_ptr().add(16 * i).cast());
            let lo = _mm_shuffle_epi8(tbl, _mm_and_si128(v, m));
            let hi = _mm_shuffle_epi8(tbl, _mm_and_si128(_mm_srli_epi16(v, 4), m));
            let d = dst.as_mut_ptr().add(32 * i);
            _mm256_storeu_si256(d.cast(), _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(lo, hi)));
            _mm256_storeu_si256(
                d.add(16).cast(),
                _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(lo, hi)),
            );
        }
    }
    nibbles_scalar(&idx[16 * full..], lut, &mut dst[32 * full..]);
}

/// SSE2 micro-kernel (the x86-64 baseline): [`micro_avx2`] on 128-bit registers, 8 `PMADDWD`
/// per 8 values, sums by unpack-and-add.
#[inline(always)]
pub(crate) fn micro_sse2(a0: &[i16], a1: &[i16], w: &[i16], kp: usize) -> [i32; 8] {
    use core::arch::x86_64::*;
    let (a0, a1, w) = (&a0[..kp], &a1[..kp], &w[..4 * kp]);
    let mut r = [0i32; 8];
    // Four accumulators to one register of their four sums.
    #[inline(always)]
    fn sums(a: __m128i, b: __m128i, c: __m128i, d: __m128i) -> __m128i {
        // SAFETY: SSE2 is part of the x86-64 baseline; register-only operations.
        unsafe {
            let ab = _mm_add_epi32(_mm_unpacklo_epi32(a, b), _mm_unpackhi_epi32(a, b));
            let cd = _mm_add_epi32(_mm_unpacklo_epi32(c, d), _mm_unpackhi_epi32(c, d));
            _mm_add_epi32(_mm_unpacklo_epi64(ab, cd), _mm_unpackhi_epi64(ab, cd))
        }
    }
    // SAFETY: SSE2 is part of the x86-64 baseline. `kp` is a multiple of 16, so every load
    // `[i, i + 8)` with `i < kp` stays inside `a0`, `a1` and row `j < 4` of `w`
    // (`w.len() == 4 * kp`, checked by the slicing above); the stores write `r[..4]`, `r[4..]`.
    unsafe {
        let mut s = [_mm_setzero_si128(); 8];
        let mut i = 0;
        while i < kp {
            let x0 = _mm_loadu_si128(a0.as_ptr().add(i).cast());
            let x1 = _mm_loadu_si128(a1.as_ptr().add(i).cast());
            for j in 0..4 {
                let v = _mm_loadu_si128(w.as_ptr().add(j * kp + i).cast());
                s[j] = _mm_add_epi32(s[j], _mm_madd_epi16(x0, v));
                s[4 + j] = _mm_add_epi32(s[4 + j], _mm_madd_epi16(x1, v));
            }
            i += 8;
        }
        _mm_storeu_si128(r.as_mut_ptr().cast(), sums(s[0], s[1], s[2], s[3]));
        _mm_storeu_si128(r.as_mut_ptr().add(4).cast(), sums(s[4], s[5], s[6], s[7]));
    }
    r
}

/// AVX2 micro-kernel: 8 `VPMADDWD` per 16 values (2 pixels x 4 channels), horizontal sums by
/// `VPHADDD`.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn micro_avx2(a0: &[i16], a1: &[i16], w: &[i16], kp: usize) -> [i32; 8] {
    use core::arch::x86_64::*;
    let (a0, a1, w) = (&a0[..kp], &a1[..kp], &w[..4 * kp]);
    let mut r = [0i32; 8];
    // SAFETY: `kp` is a multiple of 16, so every load `[i, i + 16)` with `i < kp` stays inside
    // `a0`, `a1` and row `j < 4` of `w` (`w.len() == 4 * kp`, checked by the slicing above);
    // the two stores write `r[..4]` and `r[4..]`.
    unsafe {
        let mut s = [_mm256_setzero_si256(); 8];
        let mut i = 0;
        while i < kp {
            let x0 = _mm256_loadu_si256(a0.as_ptr().add(i).cast());
            let x1 = _mm256_loadu_si256(a1.as_ptr().add(i).cast());
            for j in 0..4 {
                let v = _mm256_loadu_si256(w.as_ptr().add(j * kp + i).cast());
                s[j] = _mm256_add_epi32(s[j], _mm256_madd_epi16(x0, v));
                s[4 + j] = _mm256_add_epi32(s[4 + j], _mm256_madd_epi16(x1, v));
            }
            i += LANES;
        }
        let h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
        let h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(s[4], s[5]), _mm256_hadd_epi32(s[6], s[7]));
        let r0 = _mm_add_epi32(_mm256_castsi256_si128(h0), _mm256_extracti128_si256(h0, 1));
        let r1 = _mm_add_epi32(_mm256_castsi256_si128(h1), _mm256_extracti128_si256(h1, 1));
        _mm_storeu_si128(r.as_mut_ptr().cast(), r0);
        _mm_storeu_si128(r.as_mut_ptr().add(4).cast(), r1);
    }
    r
}
