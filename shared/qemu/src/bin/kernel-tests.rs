//! Thumb test runner: the Cortex-M4 DSP path (`ArmDot`) and the portable path against the
//! reference twins, in QEMU. Exits 0 when every case matches bit for bit.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use shared::Model;
use shared::format::{Dims, Values, WeightsDesc};
use shared::kernels::arm::ArmDot;
use shared::kernels::{
    ConvParams, ConvQuant, DotKernel, PortableDot, RefDot, conv_ref_s8, conv_s8,
    conv_s8_next_strip, conv_scratch_len, zero_skip_applies,
};
use shared::run::{run_fused_with, run_with};
use shared::weights::RowDecoder;
use sqz_shared_qemu::{Rng, exit, hprintln};

static BLOBS: [(&[u8], &[u8]); 4] = [
    (
        include_bytes!(concat!(env!("OUT_DIR"), "/example1.blob")),
        include_bytes!(concat!(env!("OUT_DIR"), "/example1.expect")),
    ),
    (
        include_bytes!(concat!(env!("OUT_DIR"), "/example2.blob")),
        include_bytes!(concat!(env!("OUT_DIR"), "/example2.expect")),
    ),
    (
        include_bytes!(concat!(env!("OUT_DIR"), "/example3.blob")),
        include_bytes!(concat!(env!("OUT_DIR"), "/example3.expect")),
    ),
    (
        include_bytes!(concat!(env!("OUT_DIR"), "/stem11.blob")),
        include_bytes!(concat!(env!("OUT_DIR"), "/stem11.expect")),
    ),
];

const MAXW: usize = 24 * 1024;
const MAXX: usize = 16 * 1024;
static mut W: [u8; MAXW] = [0; MAXW];
static mut X: [i8; MAXX] = [0; MAXX];
static mut BIAS: [u8; 4 * 128] = [0; 4 * 128];
static mut MULT: [u8; 4 * 128] = [0; 4 * 128];
static mut OUT_A: [i8; MAXX * 4] = [0; MAXX * 4];
static mut OUT_B: [i8; MAXX * 4] = [0; MAXX * 4];
static mut SCRATCH: [i8; 16 * 1024] = [0; 16 * 1024];
static mut ENT: [u8; 3 * MAXW] = [0; 3 * MAXW];
static mut ROWP: [u8; 4 * 129] = [0; 4 * 129];
static mut ARENA: [u8; 64 * 1024] = [0; 64 * 1024];

fn fnv(d: &[i8]) -> u32 {
    d.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u8 as u32).wrapping_mul(0x0100_0193)
    })
}

fn example_input(out: &mut [i8], seed: u64) {
    let mut s = seed * 0x9E37_79B9 + 1;
    for o in out {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *o = (s >> 24) as i8;
    }
}

/// One random conv case; returns false on mismatch. With `sparse`, a random 0-60 % of the
/// weights are nonzero and the layer is stored as plain sparse rows (8-bit gaps with fillers,
/// raw values), which takes the zero-skipping path when it applies (`*zero_skip` counts those).
#[allow(static_mut_refs)]
fn conv_case<K: DotKernel>(
    rng: &mut Rng,
    case: u32,
    shape: Option<(u16, u16, u16, u16, u8, u8, u8)>,
    sparse: bool,
    zero_skip: &mut u32,
) -> bool {
    // SAFETY: single-threaded test program; the statics are only used here, one case at a time.
    let (w, x, bias, mult, oa, ob, scratch) = unsafe {
        (
            &mut W,
            &mut X,
            &mut BIAS,
            &mut MULT,
            &mut OUT_A,
            &mut OUT_B,
            &mut SCRATCH,
        )
    };
    let (h, wd, cin, cout, k, s, pad) = shape.unwrap_or_else(|| {
        loop {
            let k = [1u8, 3, 3, 5, 7][rng.range(0, 4) as usize];
            let pad = rng.range(0, (k as u32 - 1).min(2)) as u8;
            let s = rng.range(1, 2) as u8;
            let h = rng.range(k as u32, 10) as u16;
            let wd = rng.range(k as u32, 10) as u16;
            let cin = rng.range(1, 24) as u16;
            let cout = rng.range(1, 40) as u16;
            if (k as usize * k as usize * cin as usize * cout as usize) <= MAXW
                && (h as usize * wd as usize * cin as usize) <= MAXX
            {
                break (h, wd, cin, cout, k, s, pad);
            }
        }
    });
    let input = Dims { h, w: wd, c: cin };
    let oh = (h as usize + 2 * pad as usize - k as usize) / s as usize + 1;
    let ow = (wd as usize + 2 * pad as usize - k as usize) / s as usize + 1;
    let p = ConvParams {
        input,
        output: Dims {
            h: oh as u16,
            w: ow as u16,
            c: cout,
        },
        kernel: [k; 2],
        stride: [s; 2],
        pad: [pad; 4],
        out_channel_stride: cout as usize + 1,
        out_channel_offset: 1,
    };
    let kk = p.k();
    let nw = kk * cout as usize;
    let density = if sparse { rng.range(0, 60) } else { 100 };
    for b in &mut w[..nw] {
        *b = if rng.range(0, 99) < density {
            rng.next() as u8
        } else {
            0
        };
    }
    for v in &mut x[..input.len()] {
        *v = rng.next() as i8;
    }
    let uniform = rng.range(0, 3) == 0;
    let m0 = 0.0001 + (rng.range(0, 10000) as f32) * 1e-6;
    for c in 0..cout as usize {
        bias[c * 4..c * 4 + 4].copy_from_slice(&(rng.range(0, 20000) as i32 - 10000).to_le_bytes());
        let m = if uniform {
            m0
        } else {
            0.0001 + (rng.range(0, 10000) as f32) * 1e-6
        };
        mult[c * 4..c * 4 + 4].copy_from_slice(&m.to_le_bytes());
    }
    let q = ConvQuant {
        in_zp: rng.next() as i8,
        bias: &bias[..4 * cout as usize],
        multipliers: &mult[..4 * cout as usize],
        uniform,
        out_zp: rng.next() as i8,
        relu: rng.range(0, 1) == 1,
    };
    let n_out = oh * ow * p.out_channel_stride;
    oa[..n_out].fill(5);
    ob[..n_out].fill(5);
    let wv: &[i8] = unsafe { core::slice::from_raw_parts(w.as_ptr().cast::<i8>(), nw) };
    conv_ref_s8(&p, &q, &x[..input.len()], wv, &mut oa[..n_out]);
    // SAFETY: single-threaded test program; the statics are only used here.
    let (ents, rowp) = unsafe { (&mut ENT, &mut ROWP) };
    let desc = if sparse {
        let mut n = 0usize;
        for r in 0..cout as usize {
            rowp[4 * r..4 * r + 4].copy_from_slice(&((n / 2) as u32).to_le_bytes());
            let mut pos = 0usize;
            for (i, &v) in w[r * kk..(r + 1) * kk].iter().enumerate() {
                if v == 0 {
                    continue;
                }
                while i - pos > 255 {
                    // Filler: skip 255 zeros, place a zero.
                    ents[n] = 255;
                    ents[n + 1] = 0;
                    n += 2;
                    pos += 256;
                }
                ents[n] = (i - pos) as u8;
                ents[n + 1] = v;
                n += 2;
                pos = i + 1;
            }
        }
        let c = cout as usize;
        rowp[4 * c..4 * c + 4].copy_from_slice(&((n / 2) as u32).to_le_bytes());
        WeightsDesc::Sparse {
            values: Values::Raw,
            gap_bits: 8,
            row_ptr: &rowp[..4 * (c + 1)],
            entries: &ents[..n],
        }
    } else {
        WeightsDesc::Dense { data: &w[..nw] }
    };
    let dec = RowDecoder::new(desc, kk).unwrap();
    let sl = conv_scratch_len(&p, !sparse);
    if sl > scratch.len() {
        return true;
    }
    if zero_skip_applies(&p, &dec, sl) {
        *zero_skip += 1;
    }
    conv_s8::<K>(
        &p,
        &q,
        &x[..input.len()],
        &dec,
        &mut ob[..n_out],
        &mut scratch[..sl],
    );
    if let Some(i) = (0..n_out).find(|&i| oa[i] != ob[i]) {
        hprintln!(
            "conv case {} {:?}: first difference at {}: reference {} vs {}",
            case,
            (h, wd, cin, cout, k, s, pad),
            i,
            oa[i],
            ob[i]
        );
        return false;
    }
    // The whole scratch (longer than the minimum, as `run` passes when the arena has room).
    ob[..n_out].fill(5);
    conv_s8::<K>(
        &p,
        &q,
        &x[..input.len()],
        &dec,
        &mut ob[..n_out],
        &mut scratch[..],
    );
    if let Some(i) = (0..n_out).find(|&i| oa[i] != ob[i]) {
        hprintln!(
            "conv case {} {:?} (long scratch): first difference at {}: reference {} vs {}",
            case,
            (h, wd, cin, cout, k, s, pad),
            i,
            oa[i],
            ob[i]
        );
        return false;
    }
    // In row strips as the fused conv + max pool plan runs it (`conv_s8`, then
    // `conv_s8_next_strip` on the same scratch: the stem reuses its records), minimum scratch.
    ob[..n_out].fill(5);
    let rows = 1 + case as usize % 3;
    let row_len = ow * p.out_channel_stride;
    let in_row = wd as usize * cin as usize;
    let (pt, sy, kh) = (pad as usize, s as usize, k as usize);
    let mut r0 = 0;
    while r0 < oh {
        let r1 = (r0 + rows).min(oh);
        let first_tap = r0 * sy;
        let y0 = first_tap.saturating_sub(pt);
        let y1 = ((r1 - 1) * sy + kh).saturating_sub(pt).min(h as usize);
        let mut ps = p;
        ps.input.h = (y1 - y0) as u16;
        ps.output.h = (r1 - r0) as u16;
        ps.pad[0] = pt.saturating_sub(first_tap) as u8;
        ps.pad[2] = 0;
        let xs = &x[y0 * in_row..y1 * in_row];
        let dst = &mut ob[r0 * row_len..r1 * row_len];
        if r0 == 0 {
            conv_s8::<K>(&ps, &q, xs, &dec, dst, &mut scratch[..sl]);
        } else {
            // SAFETY: the previous strip ran on this scratch slice with the same kernel,
            // weights and quantisation, and nothing wrote it since.
            unsafe { conv_s8_next_strip::<K>(&ps, &q, xs, &dec, dst, &mut scratch[..sl]) };
        }
        r0 = r1;
    }
    if let Some(i) = (0..n_out).find(|&i| oa[i] != ob[i]) {
        hprintln!(
            "conv case {} {:?} (strips of {} rows): first difference at {}: reference {} vs {}",
            case,
            (h, wd, cin, cout, k, s, pad),
            rows,
            i,
            oa[i],
            ob[i]
        );
        return false;
    }
    true
}

#[allow(static_mut_refs)]
fn blob_case<K: DotKernel>(i: usize) -> bool {
    let (blob, expect) = BLOBS[i];
    let m = match Model::from_bytes(blob) {
        Ok(m) => m,
        Err(e) => {
            hprintln!("blob {}: {}", i, e);
            return false;
        }
    };
    let mut input = [0i8; 1024];
    example_input(&mut input[..m.input_len()], i as u64 + 1);
    let mut logits = [0i8; 16];
    let mut n = 0usize;
    let mut ok = true;
    // SAFETY: single-threaded; ARENA is only used here.
    let arena = unsafe { &mut ARENA[..m.observed_arena_len()] };
    run_with::<K>(
        &m,
        &input[..m.input_len()],
        arena,
        &mut logits[..m.num_classes()],
        &mut |l, s, d| {
            let want = u32::from_le_bytes([
                expect[4 * n],
                expect[4 * n + 1],
                expect[4 * n + 2],
                expect[4 * n + 3],
            ]);
            if fnv(d) != want {
                hprintln!("blob {} layer {} {:?}: differs from the host run", i, l, s);
                ok = false;
            }
            n += 1;
        },
    );
    ok &= n * 4 == expect.len();
    // The fused plan (`run`) in exactly `arena_len` bytes, stale bytes in the arena: the same
    // logits.
    let want = logits;
    // SAFETY: as above; the observed run's borrow has ended.
    let arena = unsafe { &mut ARENA[..m.arena_len()] };
    arena.fill(0xAA);
    let mut fused = [0i8; 16];
    run_fused_with::<K>(
        &m,
        &input[..m.input_len()],
        arena,
        &mut fused[..m.num_classes()],
    );
    if fused != want {
        hprintln!("blob {}: the fused plan's logits differ", i);
        ok = false;
    }
    ok
}

/// Micro-kernels of `K` against `RefDot` on random packed data.
fn micro_case<K: DotKernel>(rng: &mut Rng) -> bool {
    use shared::kernels::ROW_BLOCK;
    let k = rng.range(1, 70) as usize;
    let npairs = rng.range(1, (ROW_BLOCK / 2) as u32) as usize;
    let zp = rng.next() as i8;
    let kq = k.div_ceil(4);
    let mut a = [[0i8; 70]; 2];
    for v in a.iter_mut().flat_map(|r| r.iter_mut()) {
        *v = rng.next() as i8;
    }
    let (mut acts, mut racts) = ([0u32; 72], [0u32; 72]);
    for slot in 0..2 {
        K::pack_acts(&a[slot][..k], k, slot, zp, &mut acts);
        RefDot::pack_acts(&a[slot][..k], k, slot, zp, &mut racts);
    }
    if acts[..4 * kq] != racts[..4 * kq] {
        hprintln!("pack_acts differs (k {})", k);
        return false;
    }
    let mut rows = [[0i8; 70]; ROW_BLOCK];
    for v in rows.iter_mut().flat_map(|r| r.iter_mut()) {
        *v = rng.next() as i8;
    }
    let (mut w, mut rw) = ([0u32; 72 * ROW_BLOCK / 2], [0u32; 72 * ROW_BLOCK / 2]);
    for j in 0..2 * npairs {
        K::pack(&rows[j][..k], k, j % 2, &mut w[(j / 2) * 4 * kq..]);
        RefDot::pack(&rows[j][..k], k, j % 2, &mut rw[(j / 2) * 4 * kq..]);
    }
    let mut beff = [0i32; ROW_BLOCK];
    for b in beff.iter_mut() {
        *b = rng.next() as i32 >> 8;
    }
    let (mut acc, mut racc) = ([0i32; 2 * ROW_BLOCK], [0i32; 2 * ROW_BLOCK]);
    K::dot_block(&acts, &w, kq, npairs, &beff, &mut acc);
    RefDot::dot_block(&acts, &rw, kq, npairs, &beff, &mut racc);
    let ok = w[..4 * kq * npairs] == rw[..4 * kq * npairs]
        && acc == racc
        && K::dot_2x2(&acts, &w, kq) == RefDot::dot_2x2(&acts, &w, kq)
        && K::dot_row(&acts, &rows[0][..k], k) == RefDot::dot_row(&acts, &rows[0][..k], k);
    if !ok {
        hprintln!("micro-kernels differ (k {}, npairs {})", k, npairs);
    }
    ok
}

/// `pack_nibbles` of `K` against `RefDot` on a random 4-bit codebook row.
fn nibble_case<K: DotKernel>(rng: &mut Rng) -> bool {
    use shared::kernels::dot::nibble_pair_table;
    let k = 2 * rng.range(1, 40) as usize;
    let kq = k.div_ceil(4);
    let mut lut = [0i8; 256];
    for v in lut[..16].iter_mut() {
        *v = rng.next() as i8;
    }
    let t16 = nibble_pair_table(&lut);
    let mut idx = [0u8; 40];
    for b in idx.iter_mut() {
        *b = rng.next() as u8;
    }
    let slot = rng.range(0, 1) as usize;
    let (mut a, mut b) = ([0u32; 80], [0u32; 80]);
    K::pack_nibbles(&idx[..k / 2], &t16, k, slot, &mut a);
    RefDot::pack_nibbles(&idx[..k / 2], &t16, k, slot, &mut b);
    // And against packing the decoded row.
    let row: [i8; 80] = core::array::from_fn(|i| {
        if i < k {
            lut[((idx[i / 2] >> (4 * (i % 2))) & 15) as usize]
        } else {
            0
        }
    });
    let mut c = [0u32; 80];
    RefDot::pack(&row[..k], k, slot, &mut c);
    let ok = a[..4 * kq] == b[..4 * kq] && a[..4 * kq] == c[..4 * kq];
    if !ok {
        hprintln!("pack_nibbles differs (k {})", k);
    }
    ok
}

/// `maxpool_s8` (the DSP path for `c % 4 == 0`) against `maxpool_s8_ref`.
#[allow(static_mut_refs)]
fn maxpool_case(rng: &mut Rng) -> bool {
    use shared::kernels::{PoolParams, maxpool_s8, maxpool_s8_ref};
    // SAFETY: single-threaded test program; the statics are only used one case at a time.
    let (x, oa, ob) = unsafe { (&mut X, &mut OUT_A, &mut OUT_B) };
    let k = rng.range(1, 3) as u8;
    let s = rng.range(1, 2) as u8;
    let pad = rng.range(0, k as u32 - 1).min(1) as u8;
    let h = rng.range(k as u32, 14) as u16;
    let wd = rng.range(k as u32, 14) as u16;
    let c = [4u16, 8, 12, 64, 3, 5][rng.range(0, 5) as usize];
    let ceil = rng.range(0, 1) == 1;
    let ext = |n: u16| {
        let span = n as usize + 2 * pad as usize - k as usize;
        let mut o = if ceil {
            span.div_ceil(s as usize)
        } else {
            span / s as usize
        } + 1;
        if ceil && (o - 1) * s as usize >= n as usize + pad as usize {
            o -= 1;
        }
        o as u16
    };
    let p = PoolParams {
        input: Dims { h, w: wd, c },
        output: Dims {
            h: ext(h),
            w: ext(wd),
            c,
        },
        kernel: [k; 2],
        stride: [s; 2],
        pad: [pad; 4],
    };
    if p.input.len() > x.len() {
        return true;
    }
    for v in &mut x[..p.input.len()] {
        *v = rng.next() as i8;
    }
    let n = p.output.len();
    maxpool_s8_ref(&p, &x[..p.input.len()], &mut oa[..n]);
    maxpool_s8(&p, &x[..p.input.len()], &mut ob[..n]);
    let ok = oa[..n] == ob[..n];
    if !ok {
        hprintln!("maxpool differs: {:?}", (h, wd, c, k, s, pad, ceil));
    }
    ok
}

#[entry]
fn main() -> ! {
    let mut rng = Rng(0x1234_5678_9abc);
    let mut ok = true;
    let named = [
        (14, 14, 64, 16, 1, 1, 0),
        (14, 14, 16, 64, 1, 1, 0),
        (6, 6, 16, 64, 3, 1, 1),
        (7, 7, 32, 32, 3, 1, 1),
        (28, 28, 1, 64, 3, 2, 0),
        (28, 28, 1, 64, 3, 1, 1),
        (9, 7, 1, 12, 3, 1, 1),
        (6, 8, 1, 8, 3, 2, 1),
        (28, 28, 1, 8, 7, 2, 2),
        (1, 1, 3, 1, 1, 1, 0),
    ];
    let mut cases = 0;
    let mut zs = 0u32;
    for (i, s) in named.iter().enumerate() {
        ok &= conv_case::<ArmDot>(&mut rng, i as u32, Some(*s), false, &mut zs);
        ok &= conv_case::<PortableDot>(&mut rng, i as u32, Some(*s), false, &mut zs);
        cases += 2;
    }
    for i in 0..300 {
        ok &= conv_case::<ArmDot>(&mut rng, 100 + i, None, false, &mut zs);
        cases += 1;
    }
    for i in 0..50 {
        ok &= conv_case::<PortableDot>(&mut rng, 1000 + i, None, false, &mut zs);
        cases += 1;
    }
    // Sparse weights: the zero-skipping driver (ArmDot's asm block and packer, and the
    // portable defaults) against the reference.
    let mut zero_skip = 0u32;
    for (i, s) in named.iter().enumerate() {
        ok &= conv_case::<ArmDot>(&mut rng, 2000 + i as u32, Some(*s), true, &mut zero_skip);
        ok &= conv_case::<RefDot>(&mut rng, 2000 + i as u32, Some(*s), true, &mut zero_skip);
        cases += 2;
    }
    for i in 0..400 {
        ok &= conv_case::<ArmDot>(&mut rng, 3000 + i, None, true, &mut zero_skip);
        cases += 1;
    }
    // 1-channel 3x3 stems with sparse rows (0-60 % dense): the Cortex-M4 zero-skipping stem
    // (`sqz_stem_sparse_pixel`) below about 55 %, the dense-record stem above.
    for i in 0..150 {
        let (s, pad) = (rng.range(1, 2) as u8, rng.range(0, 1) as u8);
        let (h, wd) = (rng.range(3, 28) as u16, rng.range(3, 28) as u16);
        let cout = 8 * rng.range(1, 8) as u16;
        let shape = (h, wd, 1, cout, 3, s, pad);
        ok &= conv_case::<ArmDot>(&mut rng, 4000 + i, Some(shape), true, &mut zero_skip);
        cases += 1;
    }
    hprintln!("sparse conv cases on the zero-skipping path: {}", zero_skip);
    ok &= zero_skip >= 100;
    hprintln!("conv: {} cases {}", cases, if ok { "ok" } else { "FAILED" });
    let mut micro = true;
    for _ in 0..500 {
        micro &= micro_case::<ArmDot>(&mut rng);
    }
    hprintln!(
        "micro-kernels (pack, pack_acts, dot_2x2, dot_block, dot_row): 500 cases {}",
        if micro { "ok" } else { "FAILED" }
    );
    ok &= micro;
    let mut more = true;
    for _ in 0..300 {
        more &= nibble_case::<ArmDot>(&mut rng);
        more &= nibble_case::<PortableDot>(&mut rng);
        more &= maxpool_case(&mut rng);
    }
    hprintln!(
        "pack_nibbles (ArmDot, PortableDot) and maxpool: 300 cases {}",
        if more { "ok" } else { "FAILED" }
    );
    ok &= more;
    for i in 0..BLOBS.len() {
        let a = blob_case::<ArmDot>(i);
        let b = blob_case::<RefDot>(i);
        let c = blob_case::<PortableDot>(i);
        hprintln!(
            "example blob {}: ArmDot {} RefDot {} PortableDot {}",
            i + 1,
            if a { "ok" } else { "FAILED" },
            if b { "ok" } else { "FAILED" },
            if c { "ok" } else { "FAILED" }
        );
        ok &= a && b && c;
    }
    hprintln!("{}", if ok { "ALL OK" } else { "FAILURES" });
    exit(ok)
}
