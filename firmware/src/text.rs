//! Fixed-capacity text without `core::fmt`: the fault reports and the boot refusal are built
//! from fixed strings and numbers, so the serve build links no formatting machinery (a few KB of
//! flash). What does not fit is dropped.

use heapless::String;

/// Appends `s`, as much as fits (cut at a character boundary).
pub fn push<const N: usize>(t: &mut String<N>, s: &str) {
    let mut n = s.len().min(N - t.len());
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    let _ = t.push_str(&s[..n]);
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

/// Appends a blob validation error as its code, `invalid blob: error N` (` at layer L`,
/// ` version V`): the host adds the text (`shared::Error::summary_of_code`), which stays out of
/// flash.
pub fn push_error<const N: usize>(t: &mut String<N>, e: &shared::Error) {
    push(t, shared::error::REFUSAL_PREFIX);
    push_dec(t, u32::from(e.code()));
    if let Some(l) = e.layer() {
        push(t, " at layer ");
        push_dec(t, u32::from(l));
    }
    if let shared::Error::UnsupportedVersion(v) = e {
        push(t, " version ");
        push_dec(t, u32::from(*v));
    }
}
