//! Postcard's encoding, by hand, for what `no_std` code reads and writes: the blob description
//! and the serial messages.
//!
//! The formats are postcard's (the host encodes and decodes them with postcard and serde), but
//! serde's generic deserialiser costs kilobytes of device flash for a dozen small structs. The
//! few primitives postcard uses are written out here, and each type's field order is spelled
//! out next to it (`format::read`, `protocol`); tests decode and encode the same values with
//! postcard and with this module and compare, byte for byte and error for error.
//!
//! Postcard's rules, as followed here:
//! * `u8`, `i8`: one byte. `bool`: one byte, 0 or 1 (anything else is refused).
//! * `u16`, `u32`, `u64`, `usize`, enum variant indices (as `u32`): LEB128 varints, at most
//!   `ceil(bits / 7)` bytes, the last of them within the type's range; non-minimal forms are
//!   accepted.
//! * `f32`: 4 bytes little-endian. `[u8; N]`: `N` bytes.
//! * byte slices and strings: the length as a `usize` varint, then the bytes.

/// Why a read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The bytes ended inside a value.
    End,
    /// A value is out of its range (varint too long, bool not 0/1, unknown variant).
    Bad,
}

/// A cursor over postcard bytes, borrowing slices from them.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// What has not been read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// One byte.
    pub fn byte(&mut self) -> Result<u8, ReadError> {
        let (&b, rest) = self.rest.split_first().ok_or(ReadError::End)?;
        self.rest = rest;
        Ok(b)
    }

    /// The next `n` bytes, borrowed.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if n > self.rest.len() {
            return Err(ReadError::End);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// `N` bytes (a `[u8; N]`).
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// The varint of a `bits`-wide unsigned integer.
    #[inline(never)] // one copy in flash, not one per field
    fn varint(&mut self, bits: u32) -> Result<u64, ReadError> {
        let max_len = bits.div_ceil(7);
        let mut value = 0u64;
        for i in 0..max_len {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // The last possible byte may only hold the type's remaining high bits.
                let last_bits = bits - 7 * i;
                return if i + 1 == max_len && u32::from(b) >> last_bits != 0 {
                    Err(ReadError::Bad)
                } else {
                    Ok(value)
                };
            }
        }
        Err(ReadError::Bad)
    }

    /// A `u16` varint.
    #[inline(never)] // one copy in flash, not one per field
    pub fn u16(&mut self) -> Result<u16, ReadError> {
        Ok(self.varint(16)? as u16)
    }

    /// A `u32` varint (also an enum's variant index).
    pub fn u32(&mut self) -> Result<u32, ReadError> {
        Ok(self.varint(32)? as u32)
    }

    /// A `u64` varint.
    pub fn u64(&mut self) -> Result<u64, ReadError> {
        self.varint(64)
    }

    /// A `usize` varint (a length).
    pub fn usize(&mut self) -> Result<usize, ReadError> {
        Ok(self.varint(usize::BITS)? as usize)
    }

    /// A `bool`.
    pub fn bool(&mut self) -> Result<bool, ReadError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ReadError::Bad),
        }
    }

    /// An `i8`.
    pub fn i8(&mut self) -> Result<i8, ReadError> {
        Ok(self.byte()? as i8)
    }

    /// An `f32`.
    pub fn f32(&mut self) -> Result<f32, ReadError> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    /// A byte slice (length, then the bytes), borrowed.
    #[inline(never)] // one copy in flash, not one per field
    pub fn bytes(&mut self) -> Result<&'a [u8], ReadError> {
        let n = self.usize()?;
        self.take(n)
    }
}

/// A value read from postcard bytes by hand.
pub trait Decode<'a>: Sized {
    /// Reads one value.
    fn decode(r: &mut Reader<'a>) -> Result<Self, ReadError>;
}

/// Reads one `T` from the front of `bytes`; returns it and the bytes after it.
pub fn take<'a, T: Decode<'a>>(bytes: &'a [u8]) -> Result<(T, &'a [u8]), ReadError> {
    let mut r = Reader::new(bytes);
    let value = T::decode(&mut r)?;
    Ok((value, r.rest()))
}

/// Writes postcard bytes into a fixed buffer; a write past its end sets `overflow` and is dropped.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
}

impl<'b> Writer<'b> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            len: 0,
            overflow: false,
        }
    }

    /// The bytes written, or `None` if some did not fit.
    pub fn finish(self) -> Option<usize> {
        (!self.overflow).then_some(self.len)
    }

    /// One byte.
    pub fn byte(&mut self, b: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    /// Bytes as they are (a `[u8; N]`, or the body of a slice).
    pub fn raw(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    /// An unsigned integer as a varint (minimal form).
    #[inline(never)] // one copy in flash, not one per field
    pub fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.byte(value as u8 | 0x80);
            value >>= 7;
        }
        self.byte(value as u8);
    }

    /// A byte slice or string: its length, then the bytes.
    #[inline(never)] // one copy in flash, not one per field
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.raw(bytes);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use proptest::prelude::*;

    use super::*;

    /// postcard's reading of a varint-coded type, as `Option` (error or value).
    fn postcard_take<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Option<(T, &'a [u8])> {
        postcard::take_from_bytes(bytes).ok()
    }

    fn ours<'a, T>(
        bytes: &'a [u8],
        read: impl Fn(&mut Reader<'a>) -> Result<T, ReadError>,
    ) -> Option<(T, &'a [u8])> {
        let mut r = Reader::new(bytes);
        read(&mut r).ok().map(|v| (v, r.rest()))
    }

    proptest! {
        /// Every prefix byte pattern, including overlong and out-of-range varints, reads the same.
        #[test]
        fn primitives_read_as_postcard_reads_them(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            prop_assert_eq!(ours(&bytes, Reader::u16), postcard_take::<u16>(&bytes));
            prop_assert_eq!(ours(&bytes, Reader::u32), postcard_take::<u32>(&bytes));
            prop_assert_eq!(ours(&bytes, Reader::u64), postcard_take::<u64>(&bytes));
            prop_assert_eq!(ours(&bytes, Reader::usize), postcard_take::<usize>(&bytes));
            prop_assert_eq!(ours(&bytes, Reader::bool), postcard_take::<bool>(&bytes));
            prop_assert_eq!(ours(&bytes, Reader::i8), postcard_take::<i8>(&bytes));
            prop_assert_eq!(ours(&bytes, Reader::bytes), postcard_take::<&[u8]>(&bytes));
            prop_assert_eq!(
                ours(&bytes, Reader::f32).map(|(v, r)| (v.to_bits(), r)),
                postcard_take::<f32>(&bytes).map(|(v, r)| (v.to_bits(), r))
            );
        }

        /// Varints near the edges of each type's range, which random bytes rarely hit.
        #[test]
        fn edge_varints_read_as_postcard_reads_them(value in any::<u64>(), shift in 0u32..64, pad in 0usize..3) {
            let mut buf = [0u8; 16];
            let mut w = Writer::new(&mut buf);
            w.varint(value >> shift);
            let n = w.finish().unwrap();
            // Non-minimal forms: continuation bytes of zero bits before the end.
            let mut long = buf[..n].to_vec();
            for _ in 0..pad {
                let last = long.len() - 1;
                long[last] |= 0x80;
                long.push(0);
            }
            for bytes in [&buf[..n], &long[..]] {
                prop_assert_eq!(ours(bytes, Reader::u16), postcard_take::<u16>(bytes));
                prop_assert_eq!(ours(bytes, Reader::u32), postcard_take::<u32>(bytes));
                prop_assert_eq!(ours(bytes, Reader::u64), postcard_take::<u64>(bytes));
            }
        }

        /// The writer's varints and slices are postcard's bytes.
        #[test]
        fn writes_are_postcard_bytes(value in any::<u64>(), shift in 0u32..64, body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let v = value >> shift;
            let mut buf = [0u8; 512];
            let mut w = Writer::new(&mut buf);
            w.varint(v);
            w.bytes(&body);
            let n = w.finish().unwrap();
            let mut expected = postcard::to_allocvec(&v).unwrap();
            expected.extend(postcard::to_allocvec(&body[..]).unwrap());
            prop_assert_eq!(&buf[..n], &expected[..]);
        }
    }

    #[test]
    fn a_full_writer_reports_the_overflow() {
        let mut buf = [0u8; 2];
        let mut w = Writer::new(&mut buf);
        w.varint(300);
        assert_eq!(w.finish(), Some(2));
        let mut w = Writer::new(&mut buf);
        w.bytes(&[1, 2]);
        assert_eq!(w.finish(), None);
    }
}
