//! Little-endian reads from the blob's byte fields.

use crate::error::Error;

/// Reads the `i`-th little-endian u32 of `b`.
#[inline]
pub(crate) fn le_u32(b: &[u8], i: usize) -> Result<u32, Error> {
    let s = b.get(i * 4..i * 4 + 4).ok_or(Error::BadWeights)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads the `i`-th LE i32 of a validated slice (0 when out of range: validation rules it out).
#[inline(always)]
pub(crate) fn le_i32_at(b: &[u8], i: usize) -> i32 {
    match b.get(i * 4..i * 4 + 4) {
        Some(s) => i32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Reads the `i`-th LE f32 of a validated slice (0.0 when out of range).
#[inline(always)]
pub(crate) fn le_f32_at(b: &[u8], i: usize) -> f32 {
    f32::from_bits(le_i32_at(b, i) as u32)
}
