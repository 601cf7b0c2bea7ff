//! CI smoke test (feature `smoke`, QEMU): boot, validate the blob, classify one built-in image,
//! print the result and the memory figures over semihosting, exit 0 (or 1 if the model was
//! refused).

use shared::protocol::{Engine, argmax};

use crate::config::{INPUT_LEN, NUM_CLASSES};
use crate::{Device, board, stack};

/// A fixed synthetic image: a bright diagonal band on a dark ramp (`smoke_image` on the host).
fn image(width: usize) -> [u8; INPUT_LEN] {
    let mut px = [0u8; INPUT_LEN];
    for (i, p) in px.iter_mut().enumerate() {
        let (y, x) = (i / width, i % width);
        *p = if x.abs_diff(y) < 4 {
            230
        } else {
            (x * 3) as u8
        };
    }
    px
}

/// The memory routines (`mem.s` on Thumb-2) against the byte-by-byte definition: every
/// length up to 40 at every source and destination alignment, overlapping moves both ways.
/// Returns the first failing case's name.
fn check_memory_routines() -> Result<(), &'static str> {
    use core::hint::black_box;
    const N: usize = 48;
    let pattern = |i: usize| (i * 7 + 3) as u8;
    for len in 0..=40 {
        for a in 0..4 {
            for b in 0..4 {
                let src: [u8; N] = core::array::from_fn(pattern);
                let mut dst = [0xA5u8; N];
                // SAFETY: a + len and b + len are within the N-byte arrays.
                unsafe {
                    let (s, d) = (src.as_ptr().add(a), dst.as_mut_ptr().add(b));
                    core::ptr::copy_nonoverlapping(black_box(s), black_box(d), black_box(len));
                }
                let copied = (0..N).all(|i| {
                    dst[i]
                        == if (b..b + len).contains(&i) {
                            pattern(i - b + a)
                        } else {
                            0xA5
                        }
                });
                let mut buf: [u8; N] = core::array::from_fn(pattern);
                // SAFETY: within the array; `copy` allows the overlap.
                unsafe {
                    let p = buf.as_mut_ptr();
                    core::ptr::copy(black_box(p.add(a)), black_box(p.add(b + 4)), black_box(len));
                }
                let moved = (0..N).all(|i| {
                    buf[i]
                        == if (b + 4..b + 4 + len).contains(&i) {
                            pattern(i - b - 4 + a)
                        } else {
                            pattern(i)
                        }
                });
                let mut fill = [0u8; N];
                // SAFETY: b + len within the array.
                unsafe {
                    core::ptr::write_bytes(
                        black_box(fill.as_mut_ptr().add(b)),
                        black_box(0x3C),
                        black_box(len),
                    )
                };
                let filled =
                    (0..N).all(|i| fill[i] == if (b..b + len).contains(&i) { 0x3C } else { 0 });
                if !copied {
                    return Err("memcpy");
                }
                if !moved {
                    return Err("memmove");
                }
                if !filled {
                    return Err("memset");
                }
            }
        }
    }
    Ok(())
}

/// Runs the smoke test and exits.
pub fn run(device: &mut Device) -> ! {
    if let Err(routine) = check_memory_routines() {
        board::log(format_args!(
            "smoke: {routine} differs from its definition\n"
        ));
        board::stop(1);
    }
    if let Some(r) = device.refusal() {
        board::log(format_args!(
            "smoke: model refused: {} ({})\n",
            r.code, r.detail
        ));
        board::stop(1);
    }
    let width = usize::from(device.info().input_dims[1]).max(1);
    let mut logits = [0i8; NUM_CLASSES];
    let cost = device.classify(&image(width), &mut logits);
    let info = device.info();
    board::log(format_args!(
        "smoke: ok board={} model_id={:#x} blob={} B arena={} B class={} logits={:?} cost={} {:?} stack_hwm={} B of {} B\n",
        info.board,
        info.model_id,
        info.blob_len,
        info.arena_len,
        argmax(&logits),
        logits,
        cost,
        info.cost_unit,
        stack::high_water_mark(),
        stack::size(),
    ));
    board::stop(0)
}
