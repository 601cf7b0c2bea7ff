//! Little-endian reads from the blob's byte fields.

use crate::error::Error;

/// Reads the `i`-th little-endian u32 of `b`.
#[inline]
pub(crate) fn le_u32(b: &[u8], i: usize) -> Result<u32, Error> {
    let s = b.get(i * 4..i * 4 + 4).ok_or(Error::BadWeights)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads the `i`-th LE i16 of a validated slice (0 when out of range).
#[inline(always)]
pub(crate) fn le_i16_at(b: &[u8], i: usize) -> i16 {
    match b.get(i * 2..i * 2 + 2) {
        Some(s) => i16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// Reads the `i`-th LE u16 of a validated slice (0 when out of range).
#[inline(always)]
pub(crate) fn le_u16_at(b: &[u8], i: usize) -> u16 {
    le_i16_at(b, i) as u16
}
