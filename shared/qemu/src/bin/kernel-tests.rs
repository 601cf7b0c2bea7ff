//! Thumb test runner: the kernel suite (`shared::testkit::suite`, the checks the host runs in
//! `shared/tests/kernels.rs`) on the Cortex-M4 DSP path (`ArmDot`), the portable path and the
//! reference, in QEMU, and the example blobs run exactly as on the host. Exits 0 when every
//! case matches bit for bit.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use shared::Model;
use shared::format::ConvDesc;
use shared::kernels::arm::ArmDot;
use shared::kernels::{DotKernel, PortableDot, RefDot};
use shared::run::{run_fused_with, run_with};
use shared::testkit::suite::{self, ConvBufs, ConvSpec, Mismatch};
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

/// The suite's conv cases (see build.rs): length-prefixed postcard `(ConvSpec, ConvDesc)`.
static CONV_CASES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/conv_cases.bin"));
/// Named cases at the start of `CONV_CASES` (11 shapes x 7 encodings).
const NAMED: usize = 77;

const MAXX: usize = 28 * 28 * 24;
static mut X: [i8; MAXX] = [0; MAXX];
static mut DENSE: [i8; 24 * 1024] = [0; 24 * 1024];
static mut OUT_A: [i8; 64 * 1024] = [0; 64 * 1024];
static mut OUT_B: [i8; 64 * 1024] = [0; 64 * 1024];
static mut SCRATCH: [i8; 32 * 1024] = [0; 32 * 1024];
static mut ARENA: [u8; 64 * 1024] = [0; 64 * 1024];

fn fnv(d: &[i8]) -> u32 {
    d.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u8 as u32).wrapping_mul(0x0100_0193)
    })
}

fn example_input(out: &mut [i8], seed: u64) {
    let mut rng = Rng(seed * 0x9E37_79B9 + 1);
    for o in out {
        *o = (rng.next_u32() >> 8) as i8;
    }
}

/// One randomised check of the suite.
type Check = fn(&mut Rng) -> Result<(), Mismatch>;

/// The conv cases of `CONV_CASES`, in order.
fn conv_cases() -> impl Iterator<Item = (ConvSpec, ConvDesc<'static>)> {
    let mut rest = CONV_CASES;
    core::iter::from_fn(move || {
        let (len, body) = rest.split_first_chunk::<4>()?;
        let (rec, next) = body.split_at(u32::from_le_bytes(*len) as usize);
        rest = next;
        postcard::from_bytes(rec).ok()
    })
}

/// [`suite::check_conv`] on one case with the static buffers; `Ok(zero-skip path taken)`.
#[allow(static_mut_refs)]
fn conv_case<K: DotKernel>(s: &ConvSpec, d: &ConvDesc<'_>) -> Result<bool, Mismatch> {
    // SAFETY: single-threaded test program; the statics are only used here, one case at a time.
    let (x, dense, want, got, scratch) =
        unsafe { (&mut X, &mut DENSE, &mut OUT_A, &mut OUT_B, &mut SCRATCH) };
    let x = &mut x[..s.params().input.len()];
    s.input(x);
    let mut b = ConvBufs {
        dense,
        want,
        got,
        scratch,
    };
    suite::check_conv::<K>(s, d, x, &mut b).map(|p| p.zero_skip)
}

/// Every conv case on `K` (`all`) or the named ones and the first random ones only.
fn conv_suite<K: DotKernel>(name: &str, all: bool) -> bool {
    let (mut n, mut zero_skip, mut ok) = (0, 0, true);
    for (i, (s, d)) in conv_cases().enumerate() {
        if !all && i >= NAMED + 50 {
            break;
        }
        match conv_case::<K>(&s, &d) {
            Ok(z) => zero_skip += z as u32,
            Err(e) => {
                hprintln!("{} conv case {} {:?}: {}", name, i, s, e);
                ok = false;
            }
        }
        n += 1;
    }
    hprintln!(
        "conv {}: {} cases ({} on the zero-skipping path) {}",
        name,
        n,
        zero_skip,
        if ok { "ok" } else { "FAILED" }
    );
    ok && (!all || zero_skip >= 100)
}

/// The micro-kernel checks of the suite on `K`, `n` random cases each.
fn dot_suite<K: DotKernel>(name: &str, rng: &mut Rng, n: usize) -> bool {
    let checks: [(&str, Check); 4] = [
        ("dot_block", suite::check_dot_block::<K>),
        ("sparse_block", suite::check_sparse_block::<K>),
        ("pack_nibbles", suite::check_pack_nibbles::<K>),
        ("requant_row", suite::check_requant_row::<K>),
    ];
    report(name, rng, n, &checks)
}

/// Runs each check `n` times; prints one line per check.
fn report(name: &str, rng: &mut Rng, n: usize, checks: &[(&str, Check)]) -> bool {
    let mut ok = true;
    for (what, check) in checks {
        let r = suite::repeat(n, rng, check);
        if let Err(e) = r {
            hprintln!("{} {}: {}", name, what, e);
        }
        hprintln!(
            "{} {}: {} cases {}",
            name,
            what,
            n,
            if r.is_ok() { "ok" } else { "FAILED" }
        );
        ok &= r.is_ok();
    }
    ok
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

#[entry]
fn main() -> ! {
    let mut rng = Rng(0x1234_5678_9abc);
    let mut ok = conv_suite::<ArmDot>("ArmDot", true);
    ok &= conv_suite::<PortableDot>("PortableDot", false);
    ok &= conv_suite::<RefDot>("RefDot", false);
    ok &= dot_suite::<ArmDot>("ArmDot", &mut rng, 500);
    ok &= dot_suite::<PortableDot>("PortableDot", &mut rng, 100);
    let ops: [(&str, Check); 4] = [
        ("maxpool", suite::check_maxpool),
        ("avgpool", suite::check_avgpool),
        ("global_avgpool", suite::check_global_avgpool),
        ("add", suite::check_add),
    ];
    ok &= report("pool/add", &mut rng, 300, &ops);
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
