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

/// Runs the smoke test and exits.
pub fn run(device: &mut Device) -> ! {
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
