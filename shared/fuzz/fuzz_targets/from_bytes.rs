//! Any byte string: `Model::from_bytes` returns `Ok` or a typed error, never panics; an accepted
//! model runs without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = shared::Model::from_bytes(data) {
        let input = vec![0i8; m.input_len()];
        let mut arena = vec![0u8; m.arena_len()];
        let mut logits = vec![0i8; m.num_classes()];
        shared::run(&m, &input, &mut arena, &mut logits);
    }
});
