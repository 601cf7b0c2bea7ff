//! Writes example blobs as fuzz seeds: whole blobs for `from_bytes`, blobs without the first 16
//! header bytes for `from_bytes_crc_fixed`.
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("corpus dir"));
    for seed in 1..=4u64 {
        let blob = shared::testkit::example::blob(seed);
        std::fs::write(dir.join("from_bytes").join(format!("example{seed}")), &blob).unwrap();
        std::fs::write(dir.join("from_bytes_crc_fixed").join(format!("example{seed}")), &blob[16..])
            .unwrap();
    }
}
