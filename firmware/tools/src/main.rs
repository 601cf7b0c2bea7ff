fn main() {
    let seed: u64 = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(1);
    let out = std::env::args().nth(1).expect("usage: sqz-fw-tools OUT.blob [seed]");
    std::fs::write(&out, shared::encode::example::blob(seed)).unwrap();
}
