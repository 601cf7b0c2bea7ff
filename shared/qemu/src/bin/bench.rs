//! Instruction counts of the fire-module conv shapes in QEMU. With `-icount shift=0` one
//! instruction takes 1 ns of virtual time; SysTick runs at the 25 MHz core clock, so one tick is
//! 40 instructions (calibrated at start-up against a loop of known length).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use shared::format::{Dims, WeightsDesc};
use shared::kernels::arm::ArmDot;
use shared::kernels::{ConvParams, ConvQuant, conv_s8, conv_scratch_full_len, conv_scratch_len};
use shared::weights::RowDecoder;
use sqz_shared_qemu::{counter_start, exit, hprintln};

macro_rules! w {
    ($i:literal, $j:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/bench", $i, "_", $j, ".w"))
    };
}

/// A bench shape: (name, h, w, cin, cout, k, stride, pad), the same table as `build.rs`.
type Shape = (&'static str, u16, u16, u16, u16, u8, u8, u8);

static SHAPES: [Shape; 6] = [
    ("squeeze 1x1 64->16 @14x14", 14, 14, 64, 16, 1, 1, 0),
    ("expand 1x1 16->64 @14x14", 14, 14, 16, 64, 1, 1, 0),
    ("expand 3x3 16->64 @14x14", 14, 14, 16, 64, 3, 1, 1),
    ("expand 3x3 32->128 @7x7", 7, 7, 32, 128, 3, 1, 1),
    ("stem 3x3/2 1->64 @28x28", 28, 28, 1, 64, 3, 2, 0),
    ("stem 3x3/1 p1 1->64 @28x28", 28, 28, 1, 64, 3, 1, 1),
];
static WEIGHTS: [[&[u8]; 4]; 6] = [
    [w!("0", "0"), w!("0", "1"), w!("0", "2"), w!("0", "3")],
    [w!("1", "0"), w!("1", "1"), w!("1", "2"), w!("1", "3")],
    [w!("2", "0"), w!("2", "1"), w!("2", "2"), w!("2", "3")],
    [w!("3", "0"), w!("3", "1"), w!("3", "2"), w!("3", "3")],
    [w!("4", "0"), w!("4", "1"), w!("4", "2"), w!("4", "3")],
    [w!("5", "0"), w!("5", "1"), w!("5", "2"), w!("5", "3")],
];
static ENCS: [&str; 4] = [
    "dense",
    "codebook4",
    "sparse-cb4 35%",
    "huff-sparse-cb4 35%",
];

static mut X: [i8; 14 * 14 * 64] = [1; 14 * 14 * 64];
static mut OUT: [i8; 28 * 28 * 64] = [0; 28 * 28 * 64];
static mut SCRATCH: [i8; 40 * 1024] = [0; 40 * 1024];
static BIAS: [u8; 2 * 256] = [0; 2 * 256];
static mut MULT: [u8; 2 * 256] = [0; 2 * 256];

fn ticks() -> u32 {
    cortex_m::peripheral::SYST::get_current()
}

/// Instructions per SysTick tick, from a loop of `2 * n` instructions.
fn calibrate() -> f32 {
    let n = 1_000_000u32;
    let t0 = ticks();
    // SAFETY: register-only countdown loop.
    unsafe {
        core::arch::asm!("2:", "subs {n}, #1", "bne 2b", n = inout(reg) n => _);
    }
    let t1 = ticks();
    (2 * n) as f32 / (t0.wrapping_sub(t1) & 0x00FF_FFFF) as f32
}

/// A conv of `cin` -> `cout` channels, `k`x`k`, stride `s`, padding `pad` on an `h`x`w` input.
fn conv_params(h: u16, w: u16, cin: u16, cout: u16, k: u8, s: u8, pad: u8) -> ConvParams {
    let out = |n: u16| ((n as usize + 2 * pad as usize - k as usize) / s as usize + 1) as u16;
    ConvParams {
        input: Dims { h, w, c: cin },
        output: Dims {
            h: out(h),
            w: out(w),
            c: cout,
        },
        kernel: [k; 2],
        stride: [s; 2],
        pad: [pad; 4],
        out_channel_stride: cout as usize,
        out_channel_offset: 0,
    }
}

/// Zero bias, the given per-channel u16 multipliers with shift 24, ReLU, zero points -128.
fn conv_quant(mult: &[u8], cout: u16) -> ConvQuant<'_> {
    ConvQuant {
        in_zp: -128,
        bias: &BIAS[..2 * cout as usize],
        bias_shift: 0,
        multipliers: &mult[..2 * cout as usize],
        shift: 24,
        out_zp: -128,
        relu: true,
    }
}

#[entry]
#[allow(static_mut_refs)]
fn main() -> ! {
    counter_start();
    let ipt = calibrate();
    hprintln!("instructions per SysTick tick: {}", ipt);
    hprintln!(
        "| shape | weights | MACs | instructions | MACs/instruction | instructions, minimum scratch | MACs/instruction | output FNV |"
    );
    hprintln!("|---|---|---:|---:|---:|---:|---:|---|");
    // SAFETY: single-threaded benchmark program.
    let (x, out, scratch, mult) = unsafe { (&mut X, &mut OUT, &mut SCRATCH, &mut MULT) };
    for c in 0..256 {
        // About 0.001 + c * 1e-5 as m / 2^24.
        let m = 16_777 + c as u16 * 168;
        mult[c * 2..c * 2 + 2].copy_from_slice(&m.to_le_bytes());
    }
    for (i, v) in x.iter_mut().enumerate() {
        *v = (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as i8;
    }
    for (si, &(name, h, wd, cin, cout, k, s, pad)) in SHAPES.iter().enumerate() {
        let p = conv_params(h, wd, cin, cout, k, s, pad);
        let (input, oh, ow) = (p.input, p.output.h as usize, p.output.w as usize);
        let q = conv_quant(mult, cout);
        let macs = oh * ow * p.k() * cout as usize;
        for (ei, bytes) in WEIGHTS[si].iter().enumerate() {
            let wd: WeightsDesc<'_> = postcard::from_bytes(bytes).unwrap();
            let dec = RowDecoder::new(wd, p.k()).unwrap();
            let xin = &x[..input.len().min(x.len())];
            // Full weight blocks (a layer with room in the arena), then the plan's minimum.
            let mut ins = [0u32; 2];
            for (n, sl) in [
                conv_scratch_full_len(&p, dec.is_dense()),
                conv_scratch_len(&p, dec.is_dense()),
            ]
            .into_iter()
            .enumerate()
            {
                let t0 = ticks();
                conv_s8::<ArmDot>(
                    &p,
                    &q,
                    xin,
                    &dec,
                    &mut out[..oh * ow * cout as usize],
                    &mut scratch[..sl],
                );
                let t1 = ticks();
                ins[n] = ((t0.wrapping_sub(t1) & 0x00FF_FFFF) as f32 * ipt) as u32;
            }
            let ratio = |i: u32| (macs as f32 / i as f32 * 100.0) as u32 as f32 / 100.0;
            // Reading the output keeps the optimiser from dropping the stores (and shows that
            // every encoding computes the same tensor).
            let o = core::hint::black_box(&out[..oh * ow * cout as usize]);
            let h = o.iter().fold(0x811c_9dc5u32, |h, &b| {
                (h ^ b as u8 as u32).wrapping_mul(0x0100_0193)
            });
            hprintln!(
                "| {} | {} | {} | {} | {} | {} | {} | {:08x} |",
                name,
                ENCS[ei],
                macs,
                ins[0],
                ratio(ins[0]),
                ins[1],
                ratio(ins[1]),
                h
            );
        }
    }
    sweep(ipt);
    network(ipt);
    exit(true)
}

static NETS: [(&str, &str, &[u8]); 3] = [
    (
        "SqueezeNet v1.1 28x28",
        "dense",
        include_bytes!(concat!(env!("OUT_DIR"), "/squeezenet_dense.blob")),
    ),
    (
        "SqueezeNet v1.1 28x28",
        "huffman-sparse-codebook4 45%",
        include_bytes!(concat!(env!("OUT_DIR"), "/squeezenet_hsc.blob")),
    ),
    (
        "models/shipped.blob",
        "as shipped (zero-skip-smallest)",
        include_bytes!(concat!(env!("OUT_DIR"), "/shipped.blob")),
    ),
];
static mut ARENA: [u8; 96 * 1024] = [0; 96 * 1024];

/// Whole networks per inference: SqueezeNet v1.1 (28x28x1, 10 classes, random weights) and the
/// shipped model when present.
#[allow(static_mut_refs)]
fn network(ipt: f32) {
    hprintln!("");
    hprintln!(
        "| network | weights | blob bytes | arena bytes | MACs | instructions | MACs/instruction |"
    );
    hprintln!("|---|---|---:|---:|---:|---:|---:|");
    for (net, name, blob) in NETS.iter() {
        if blob.is_empty() {
            continue;
        }
        let t0 = ticks();
        let m = shared::Model::from_bytes(blob).unwrap();
        let t1 = ticks();
        let validate = ((t0.wrapping_sub(t1) & 0x00FF_FFFF) as f32 * ipt) as u32;
        let mut macs = 0usize;
        for l in m.layers() {
            let conv_macs = |c: &shared::format::ConvDesc<'_>, i: Dims| {
                let o = (i.h as usize + c.pad[0] as usize + c.pad[2] as usize
                    - c.kernel[0] as usize)
                    / c.stride[0] as usize
                    + 1;
                let ow = (i.w as usize + c.pad[1] as usize + c.pad[3] as usize
                    - c.kernel[1] as usize)
                    / c.stride[1] as usize
                    + 1;
                o * ow
                    * c.out_channels as usize
                    * c.kernel[0] as usize
                    * c.kernel[1] as usize
                    * i.c as usize
            };
            match &l.desc {
                shared::format::LayerDesc::Conv(c) => macs += conv_macs(c, l.input),
                shared::format::LayerDesc::Fire(f) => {
                    macs += conv_macs(&f.squeeze, l.input);
                    let s = Dims {
                        h: l.input.h,
                        w: l.input.w,
                        c: f.squeeze.out_channels,
                    };
                    macs += conv_macs(&f.expand1, s) + conv_macs(&f.expand3, s);
                }
                _ => {}
            }
        }
        let input = [7i8; 784];
        let mut logits = [0i8; 10];
        // SAFETY: single-threaded benchmark program.
        let arena = unsafe { &mut ARENA[..m.arena_len()] };
        let t0 = ticks();
        shared::run(&m, &input, arena, &mut logits);
        let t1 = ticks();
        let ins = ((t0.wrapping_sub(t1) & 0x00FF_FFFF) as f32 * ipt) as u32;
        hprintln!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            net,
            name,
            blob.len(),
            m.arena_len(),
            macs,
            ins,
            (macs as f32 / ins as f32 * 100.0) as u32 as f32 / 100.0
        );
        hprintln!(
            "  (from_bytes: {} instructions; logits {:?})",
            validate,
            core::hint::black_box(logits)
        );
        if !net.starts_with("models/") {
            continue;
        }
        // Shipped model, per observed tensor (layer, sub-op): instructions since the previous
        // observation (the observer's own cost, a few hundred instructions, included).
        // SAFETY: single-threaded bench; ARENA's previous borrow (the runs above) has ended.
        let arena = unsafe { &mut ARENA[..m.observed_arena_len()] };
        let mut last = ticks();
        shared::run_observed(&m, &input, arena, &mut logits, &mut |l, op, _| {
            let now = ticks();
            let ins = ((last.wrapping_sub(now) & 0x00FF_FFFF) as f32 * ipt) as u32;
            hprintln!("    layer {} {:?}: {}", l, op, ins);
            last = ticks();
        });
    }
}

/// A density-sweep case: (name, h, w, cin, cout, k, pad, percent nonzero, weights).
type SweepCase = (&'static str, u16, u16, u16, u16, u8, u8, u32, &'static [u8]);

include!(concat!(env!("OUT_DIR"), "/sweep.rs"));

/// Zero-skipping sparse rows (byte entries, 4-bit codebook) at several densities against packed
/// codebook rows (density 0 in the table), per shape, with full scratch.
#[allow(static_mut_refs)]
fn sweep(ipt: f32) {
    hprintln!("");
    hprintln!("| shape | density % (0: packed codebook4) | zero-skipping | instructions |");
    hprintln!("|---|---:|---|---:|");
    // SAFETY: single-threaded benchmark program.
    let (x, out, scratch) = unsafe { (&mut X, &mut OUT, &mut SCRATCH) };
    // SAFETY: as above; MULT is only read here.
    let mult = unsafe { &MULT };
    for &(name, h, wd, cin, cout, k, pad, pct, bytes) in SWEEP.iter() {
        let p = conv_params(h, wd, cin, cout, k, 1, pad);
        let input = p.input;
        let q = conv_quant(mult, cout);
        let wdesc: WeightsDesc<'_> = postcard::from_bytes(bytes).unwrap();
        let dec = RowDecoder::new(wdesc, p.k()).unwrap();
        let sl = conv_scratch_full_len(&p, dec.is_dense()).min(scratch.len());
        let zs = shared::kernels::zero_skip_applies(&p, &dec, sl);
        let n = h as usize * wd as usize * cout as usize;
        let t0 = ticks();
        conv_s8::<ArmDot>(
            &p,
            &q,
            &x[..input.len()],
            &dec,
            &mut out[..n],
            &mut scratch[..sl],
        );
        let t1 = ticks();
        let ins = ((t0.wrapping_sub(t1) & 0x00FF_FFFF) as f32 * ipt) as u32;
        core::hint::black_box(&out[..n]);
        hprintln!("| {} | {} | {} | {} |", name, pct, zs, ins);
    }
}
