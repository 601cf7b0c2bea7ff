//! The one seeded generator of the tests, fixtures and benches: xorshift64, 32 bits out.

/// Deterministic xorshift64 generator (`s ^= s << 13; s ^= s >> 7; s ^= s << 17`, the high
/// bits `s >> 16` out); the seed must not be 0.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);
impl Rng {
    /// Next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u32() % (hi - lo + 1) as u32) as i32
    }
    /// Uniform f32 in `[lo, hi)`.
    pub fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next_u32() % 1_000_000) as f32 / 1e6
    }
}
