//! Fixed-capacity text without `core::fmt`: the fault reports and the boot refusal are built
//! from fixed strings and numbers, so the serve build links no formatting machinery (a few KB of
//! flash). What does not fit is dropped.

use heapless::String;

/// Appends `s`, as much as fits.
pub fn push<const N: usize>(t: &mut String<N>, s: &str) {
    for c in s.chars() {
        if t.push(c).is_err() {
            return;
        }
    }
}

/// Appends `v` in decimal.
pub fn push_dec<const N: usize>(t: &mut String<N>, v: u32) {
    let mut digits = [0u8; 10];
    let (mut v, mut n) = (v, 0);
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in digits[..n].iter().rev() {
        let _ = t.push(d as char);
    }
}

/// Appends `v` as `0x` and 8 hex digits.
pub fn push_hex<const N: usize>(t: &mut String<N>, v: u32) {
    push(t, "0x");
    for i in (0..8).rev() {
        let d = ((v >> (4 * i)) & 15) as u8;
        let _ = t.push(if d < 10 { b'0' + d } else { b'a' + d - 10 } as char);
    }
}

/// Appends a blob validation error: `layer N: summary`, or the summary (with the version).
pub fn push_error<const N: usize>(t: &mut String<N>, e: &shared::Error) {
    if let Some(l) = e.layer() {
        push(t, "layer ");
        push_dec(t, u32::from(l));
        push(t, ": ");
    }
    push(t, e.summary());
    if let shared::Error::UnsupportedVersion(v) = e {
        push(t, " ");
        push_dec(t, u32::from(*v));
    }
}
