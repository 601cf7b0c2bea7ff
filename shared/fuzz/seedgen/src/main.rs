//! Writes fuzz seeds: example blobs (whole for `from_bytes`, without the first 16 header bytes
//! for `from_bytes_crc_fixed`) and request frames for `frames` (a mode byte, then a stream of a
//! hello, a classify of the mock's 16 pixels, one of the wrong length, the image in two parts
//! and its classify, and a broken frame).
use shared::protocol::{Request, encode_frame};

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("corpus dir"));
    for seed in 1..=4u64 {
        let blob = shared::testkit::example::blob(seed);
        std::fs::write(dir.join("from_bytes").join(format!("example{seed}")), &blob).unwrap();
        std::fs::write(dir.join("from_bytes_crc_fixed").join(format!("example{seed}")), &blob[16..])
            .unwrap();
    }
    let pixels: Vec<u8> = (0..16).collect();
    let requests = [
        Request::Hello,
        Request::Classify { seq: 1, pixels: &pixels },
        Request::Classify { seq: 2, pixels: &pixels[..5] },
        Request::Part { offset: 0, pixels: &pixels[..10] },
        Request::Part { offset: 10, pixels: &pixels[10..] },
        Request::Classify { seq: 3, pixels: &[] },
    ];
    let mut stream = Vec::new();
    for r in &requests {
        let (mut scratch, mut out) = ([0u8; 256], [0u8; 300]);
        let n = encode_frame(r, &mut scratch, &mut out).unwrap();
        stream.extend_from_slice(&out[..n]);
    }
    stream.extend_from_slice(&[3, 1, 2, 0]);
    for mode in 0..2u8 {
        let seed: Vec<u8> = [mode].into_iter().chain(stream.iter().copied()).collect();
        std::fs::write(dir.join("frames").join(format!("stream{mode}")), seed).unwrap();
    }
}
