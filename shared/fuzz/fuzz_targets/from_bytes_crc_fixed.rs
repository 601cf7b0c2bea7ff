//! Mutations of the payload with the header (length, CRC) recomputed, so the fuzzer explores
//! the validator past the checksum. Accepted models must run without panicking, on the default
//! kernels and on the reference dot kernel; and the same for a build carrying fewer decoders and
//! kernels (as the firmware does, `caps`), which must never accept what the full build refuses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shared::caps::Caps;
use shared::kernels::Capped;

/// The shipped firmware's switches: plain and Huffman-coded sparse rows on the zero-skipping
/// driver alone (no packed driver), global average pool, no stem kernels.
#[derive(Debug)]
struct ShippedLike;

impl Caps for ShippedLike {
    const DENSE: bool = false;
    const CODEBOOK: bool = false;
    const HUFF_CODEBOOK: bool = false;
    const PACKED: bool = false;
    const AVG_POOL: bool = false;
    const BYPASS: bool = false;
    const MAXPOOL_ANY_CHANNELS: bool = false;
    const STEM_DENSE: bool = false;
    const STEM_SPARSE: bool = false;
}

fuzz_target!(|data: &[u8]| {
    let mut blob = Vec::with_capacity(data.len() + 24);
    blob.extend_from_slice(b"SQZB");
    blob.extend_from_slice(&shared::format::FORMAT_VERSION.to_le_bytes());
    blob.extend_from_slice(&[0, 0]);
    blob.extend_from_slice(&(data.len().saturating_sub(8) as u32).to_le_bytes());
    blob.extend_from_slice(&[0; 4]);
    blob.extend_from_slice(data);
    if blob.len() < 24 {
        return;
    }
    let crc = shared::format::crc32(&blob[16..]);
    blob[12..16].copy_from_slice(&crc.to_le_bytes());
    let full_accepts = shared::Model::from_bytes(&blob).is_ok();
    if let Ok(m) = shared::Model::from_bytes_for::<ShippedLike>(&blob) {
        assert!(
            full_accepts,
            "the narrow build accepted a blob the full build refuses"
        );
        let input = vec![0i8; m.input_len()];
        let mut arena = vec![0u8; m.arena_len()];
        let mut logits = vec![0i8; m.num_classes()];
        shared::run::run_fused_with::<Capped<shared::kernels::BestDot, ShippedLike>>(
            &m,
            &input,
            &mut arena,
            &mut logits,
        );
    }
    if let Ok(m) = shared::Model::from_bytes(&blob) {
        let input = vec![0i8; m.input_len()];
        let mut arena = vec![0u8; m.arena_len()];
        let mut logits = vec![0i8; m.num_classes()];
        shared::run(&m, &input, &mut arena, &mut logits);
        // The generic packed and zero-skipping drivers as well (the host's `run` takes the wide
        // x86 path), fused and layer by layer.
        shared::run::run_fused_with::<shared::kernels::RefDot>(&m, &input, &mut arena, &mut logits);
        let mut whole = vec![0u8; m.observed_arena_len()];
        shared::run::run_with::<shared::kernels::RefDot>(
            &m,
            &input,
            &mut whole,
            &mut logits,
            &mut |_, _, _| {},
        );
    }
});
