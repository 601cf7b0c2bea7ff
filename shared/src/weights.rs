//! Weight encodings (Deep Compression) and their per-output-channel decoders.
//!
//! A layer's weights are `cout` rows of `k = kh * kw * cin` int8 values (OHWI). Every encoding
//! decodes one row at a time into a caller-provided scratch row of `k` bytes
//! ([`RowDecoder::decode_row`]); dense weights need no decoding ([`RowDecoder::dense_row`]).
//! Bit streams are packed LSB-first: bit `i` of a stream is bit `i % 8` of byte `i / 8`.

use core::cell::Cell;
use core::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::bytes::le_u32;
use crate::caps::{Caps, Everything};
use crate::error::Error;

/// Longest canonical Huffman code length accepted.
pub const MAX_CODE_LEN: usize = 15;

/// How a layer's weights are stored. Borrowed zero-copy from the blob.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum WeightsDesc<'a> {
    /// `cout * k` int8 values, OHWI.
    Dense {
        /// The values (as raw bytes, two's complement).
        #[serde(borrow)]
        data: &'a [u8],
    },
    /// Every weight is `centroids[index]`; indices `bits` wide, packed, row `r` starting at bit
    /// `r * k * bits`.
    Codebook {
        /// 1..=256 int8 centroids.
        #[serde(borrow)]
        centroids: &'a [u8],
        /// Index width, 2..=8.
        bits: u8,
        /// The packed indices (`ceil(cout * k * bits / 8)` bytes).
        #[serde(borrow)]
        indices: &'a [u8],
    },
    /// Sparse rows of `(gap, value)` entries: skip `gap` zeros, then place `value`. Gaps longer
    /// than `2^gap_bits - 1` are split with filler entries whose value decodes to 0.
    Sparse {
        /// The values: raw int8 (`value_bits == 8`) or codebook indices.
        #[serde(borrow)]
        values: Values<'a>,
        /// Gap width, 1..=8.
        gap_bits: u8,
        /// Where each row's entries start: a [`RowIndex`].
        #[serde(borrow)]
        row_ptr: &'a [u8],
        /// Packed entries, each `gap_bits` then `value_bits` (LSB-first).
        #[serde(borrow)]
        entries: &'a [u8],
    },
    /// Sparse entries whose gaps and values are canonical-Huffman coded (gap code then value code
    /// per entry); row `r` is bits `row_bits[r]..row_bits[r+1]` of `stream` and holds the
    /// entries `row_ptr` gives it.
    HuffSparse {
        /// The values: raw int8 (symbol = byte) or codebook indices.
        #[serde(borrow)]
        values: Values<'a>,
        /// Code length (0 = unused) of each gap symbol `0..gap_lengths.len()` (<= 256).
        #[serde(borrow)]
        gap_lengths: &'a [u8],
        /// Code length of each value symbol (`2^value_bits` entries).
        #[serde(borrow)]
        value_lengths: &'a [u8],
        /// How many entries each row holds: a [`RowIndex`].
        #[serde(borrow)]
        row_ptr: &'a [u8],
        /// `cout + 1` u32 LE bit offsets into `stream`, or empty: each row starts where the one
        /// before it ends (see [`RowDecoder`]'s cursor).
        #[serde(borrow)]
        row_bits: &'a [u8],
        /// The Huffman bit stream (codes written MSB-first of the code, bits LSB-first in bytes).
        #[serde(borrow)]
        stream: &'a [u8],
    },
    /// Dense codebook indices, canonical-Huffman coded; row `r` is bits
    /// `row_bits[r]..row_bits[r+1]` of `stream` and decodes to exactly `k` indices.
    HuffCodebook {
        /// 1..=256 int8 centroids.
        #[serde(borrow)]
        centroids: &'a [u8],
        /// Code length of each index symbol `0..centroids.len()`.
        #[serde(borrow)]
        lengths: &'a [u8],
        /// `cout + 1` u32 LE bit offsets, or empty: each row starts where the one before it ends.
        #[serde(borrow)]
        row_bits: &'a [u8],
        /// The bit stream.
        #[serde(borrow)]
        stream: &'a [u8],
    },
}

/// The entries of each sparse row (`row_ptr`), in one of two forms told apart by the first
/// byte. Rows are read in order (the kernels visit a layer's rows once, first to last), so
/// per-row counts cost one addition per row at a quarter of the bytes of offsets, which only
/// rows of more than 255 entries still need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowIndex<'a> {
    /// `cout + 1` u32 LE offsets, the first 0 (so the first byte is 0): row `r` holds entries
    /// `[r]..[r + 1]`.
    Offsets(&'a [u8]),
    /// [`ROW_COUNTS`] then `cout` u8: the entry count of each row; a row starts where the rows
    /// before it end.
    Counts(&'a [u8]),
}

/// First byte of a [`RowIndex::Counts`] index (an offsets index starts with 0).
pub const ROW_COUNTS: u8 = 0xff;

impl<'a> RowIndex<'a> {
    /// The index stored in `row_ptr`.
    #[inline]
    pub fn of(row_ptr: &'a [u8]) -> Self {
        match row_ptr.split_first() {
            Some((&ROW_COUNTS, counts)) => RowIndex::Counts(counts),
            _ => RowIndex::Offsets(row_ptr),
        }
    }

    /// Checks the index of `cout` rows and returns the layer's entry count.
    fn validate(&self, cout: usize) -> Result<usize, Error> {
        match self {
            RowIndex::Offsets(p) => {
                if p.len() != (cout + 1) * 4 {
                    return Err(Error::BadWeights);
                }
                let mut prev = 0u32;
                for i in 0..=cout {
                    let v = le_u32(p, i)?;
                    if v < prev || (i == 0 && v != 0) {
                        return Err(Error::BadWeights);
                    }
                    prev = v;
                }
                Ok(prev as usize)
            }
            RowIndex::Counts(c) if c.len() == cout => Ok(c.iter().map(|&n| n as usize).sum()),
            RowIndex::Counts(_) => Err(Error::BadWeights),
        }
    }
}

/// Value alphabet of sparse encodings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Values<'a> {
    /// Raw int8 values (8 bits each).
    Raw,
    /// Codebook indices of `bits` (2..=8) bits into `centroids` (1..=256 int8).
    Codebook {
        /// Centroids.
        #[serde(borrow)]
        centroids: &'a [u8],
        /// Index width.
        bits: u8,
    },
}

impl Values<'_> {
    fn bits(&self) -> u32 {
        match self {
            Values::Raw => 8,
            Values::Codebook { bits, .. } => *bits as u32,
        }
    }
    fn validate(&self) -> Result<(), Error> {
        if let Values::Codebook { centroids, bits } = self
            && (!(2..=8).contains(bits) || centroids.is_empty() || centroids.len() > 256)
        {
            return Err(Error::BadWeights);
        }
        Ok(())
    }
}

/// A canonical Huffman decoding table (`puff`-style: counts per length and symbols in canonical
/// order). Built from code lengths; lives on the stack (about 530 bytes).
#[derive(Debug, Clone)]
pub struct Huffman {
    counts: [u16; MAX_CODE_LEN + 1],
    symbols: [u8; 256],
}

impl Huffman {
    /// Builds the table; fails when a length exceeds [`MAX_CODE_LEN`], there are more than 256
    /// symbols, no symbol has a code, or the code is over-subscribed (Kraft sum > 1).
    pub fn new(lengths: &[u8]) -> Result<Self, Error> {
        if lengths.is_empty() || lengths.len() > 256 {
            return Err(Error::BadHuffman);
        }
        let mut counts = [0u16; MAX_CODE_LEN + 1];
        for &l in lengths {
            if l as usize > MAX_CODE_LEN {
                return Err(Error::BadHuffman);
            }
            counts[l as usize] += 1;
        }
        counts[0] = 0;
        let mut left: i32 = 1;
        for &count in &counts[1..] {
            left <<= 1;
            left -= count as i32;
            if left < 0 {
                return Err(Error::BadHuffman);
            }
        }
        if counts.iter().all(|&c| c == 0) {
            return Err(Error::BadHuffman);
        }
        let mut offs = [0u16; MAX_CODE_LEN + 2];
        for len in 1..=MAX_CODE_LEN {
            offs[len + 1] = offs[len] + counts[len];
        }
        let mut symbols = [0u8; 256];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbols[offs[l as usize] as usize] = sym as u8;
                offs[l as usize] += 1;
            }
        }
        Ok(Huffman { counts, symbols })
    }
}

/// Decoding state of one layer's weights prepared once per layer (Huffman tables, 8-bit
/// Huffman lookup tables, centroid table); about 1.9 KiB, on the stack. Decodes the encodings
/// `C` carries ([`Caps`]); [`RowDecoder::new`] refuses the others.
#[derive(Debug)]
pub struct RowDecoder<'a, C: Caps = Everything> {
    w: WeightsDesc<'a>,
    k: usize,
    h1: Option<Huffman>,
    h2: Option<Huffman>,
    /// First-level lookup of `h1`/`h2` by the next 8 stream bits: `len << 8 | symbol`, 0 when the
    /// code is longer than 8 bits.
    t1: [u16; 256],
    t2: [u16; 256],
    /// Centroids (or the identity for raw values) indexed by symbol.
    lut: [i8; 256],
    /// `(row, first entry)` of the last row looked up in a [`RowIndex::Counts`] index: the
    /// next row in order starts from there instead of summing from row 0.
    cursor: Cell<(usize, usize)>,
    /// `(row, first bit)` of the next Huffman row in order, for streams stored without row
    /// offsets: a row starts where the one before it ended.
    huff_cursor: Cell<(usize, usize)>,
    caps: PhantomData<C>,
}

/// Builds the 8-bit first-level table of a canonical code.
fn fast_table(lengths: &[u8]) -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut bl_count = [0u32; MAX_CODE_LEN + 1];
    for &l in lengths {
        if (1..=MAX_CODE_LEN as u8).contains(&l) {
            bl_count[l as usize] += 1;
        }
    }
    let mut next = [0u32; MAX_CODE_LEN + 1];
    let mut code = 0u32;
    for bits in 1..=MAX_CODE_LEN {
        code = (code + bl_count[bits - 1]) << 1;
        next[bits] = code;
    }
    for (sym, &l) in lengths.iter().enumerate() {
        let l = l as usize;
        if l == 0 || l > MAX_CODE_LEN {
            continue;
        }
        let c = next[l];
        next[l] += 1;
        if l > 8 || c >= 1 << l {
            continue;
        }
        // Stream bits are the code MSB first, read LSB first: the index is the reversed code.
        let rev = (c.reverse_bits() >> (32 - l)) as usize;
        let mut i = rev;
        while i < 256 {
            t[i] = ((l as u16) << 8) | sym as u16;
            i += 1 << l;
        }
    }
    t
}

/// LSB-first bit reader with a 32-bit buffer; past the end it reads zero bits.
struct FastBits<'a> {
    data: &'a [u8],
    byte: usize,
    buf: u32,
    n: u32,
    consumed: usize,
}

impl<'a> FastBits<'a> {
    #[inline(always)]
    fn new(data: &'a [u8], bit: usize) -> Self {
        let mut r = FastBits {
            data,
            byte: bit / 8,
            buf: 0,
            n: 0,
            consumed: bit,
        };
        r.refill();
        let skip = (bit % 8) as u32;
        r.buf >>= skip;
        r.n -= skip;
        r
    }
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(b) = self.data.get(self.byte..self.byte + 4) {
            // A whole word: the bits past the last whole byte taken are the stream's own next
            // bits, so OR-ing them in again on the next refill changes nothing.
            let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            self.buf |= w << self.n;
            let add = (31 - self.n) / 8;
            self.byte += add as usize;
            self.n += 8 * add;
            return;
        }
        while self.n <= 24 {
            let b = self.data.get(self.byte).copied().unwrap_or(0);
            self.buf |= (b as u32) << self.n;
            self.byte += 1;
            self.n += 8;
        }
    }
    /// Takes `k <= 16` bits.
    #[inline(always)]
    fn take(&mut self, k: u32) -> u32 {
        if self.n < 16 {
            self.refill();
        }
        let v = self.buf & ((1u32 << k) - 1);
        self.buf >>= k;
        self.n -= k;
        self.consumed += k as usize;
        v
    }
    /// Decodes one symbol with the first-level table, falling back to the canonical walk.
    #[inline(always)]
    fn huff(&mut self, t: &[u16; 256], h: &Huffman) -> Option<u32> {
        if self.n < 16 {
            self.refill();
        }
        let e = t[(self.buf & 0xff) as usize];
        if e != 0 {
            let l = (e >> 8) as u32;
            self.buf >>= l;
            self.n -= l;
            self.consumed += l as usize;
            return Some((e & 0xff) as u32);
        }
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..=MAX_CODE_LEN {
            code |= self.take(1) as i32;
            let count = h.counts[len] as i32;
            if code - count < first {
                return h
                    .symbols
                    .get((index + code - first) as usize)
                    .map(|&s| s as u32);
            }
            index += count;
            first += count;
            first <<= 1;
            code <<= 1;
        }
        None
    }
}

impl<'a> RowDecoder<'a> {
    /// Prepares decoding of `w` with rows of `k` values (builds Huffman tables).
    pub fn new(w: WeightsDesc<'a>, k: usize) -> Result<Self, Error> {
        Self::with_caps(w, k)
    }
}

impl<'a, C: Caps> RowDecoder<'a, C> {
    /// [`RowDecoder::new`] with `C`'s decoders: an encoding `C` leaves out is
    /// [`Error::NotBuiltIn`].
    pub fn with_caps(w: WeightsDesc<'a>, k: usize) -> Result<Self, Error> {
        if !decodes::<C>(&w) {
            return Err(Error::NotBuiltIn);
        }
        let (mut t1, mut t2) = ([0u16; 256], [0u16; 256]);
        let (h1, h2) = match w {
            WeightsDesc::HuffSparse {
                gap_lengths,
                value_lengths,
                ..
            } if C::HUFF_SPARSE => {
                t1 = fast_table(gap_lengths);
                t2 = fast_table(value_lengths);
                (
                    Some(Huffman::new(gap_lengths)?),
                    Some(Huffman::new(value_lengths)?),
                )
            }
            WeightsDesc::HuffCodebook { lengths, .. } if C::HUFF_CODEBOOK => {
                t1 = fast_table(lengths);
                (Some(Huffman::new(lengths)?), None)
            }
            _ => (None, None),
        };
        let mut lut: [i8; 256] = core::array::from_fn(|i| i as u8 as i8);
        let cents = match w {
            WeightsDesc::Codebook { centroids, .. }
            | WeightsDesc::HuffCodebook { centroids, .. } => Some(centroids),
            WeightsDesc::Sparse {
                values: Values::Codebook { centroids, .. },
                ..
            }
            | WeightsDesc::HuffSparse {
                values: Values::Codebook { centroids, .. },
                ..
            } => Some(centroids),
            _ => None,
        };
        if let Some(c) = cents {
            lut = [0; 256];
            for (l, &v) in lut.iter_mut().zip(c) {
                *l = v as i8;
            }
        }
        Ok(RowDecoder {
            w,
            k,
            h1,
            h2,
            t1,
            t2,
            lut,
            cursor: Cell::new((0, 0)),
            huff_cursor: Cell::new((0, 0)),
            caps: PhantomData,
        })
    }

    /// Entries `start..end` of row `r` in `index`.
    #[inline]
    fn row_range(&self, row_ptr: &[u8], r: usize) -> Result<(usize, usize), Error> {
        match RowIndex::of(row_ptr) {
            RowIndex::Offsets(p) => Ok((le_u32(p, r)? as usize, le_u32(p, r + 1)? as usize)),
            RowIndex::Counts(c) => {
                let n = *c.get(r).ok_or(Error::BadWeights)? as usize;
                let (mut row, mut start) = self.cursor.get();
                if row > r {
                    (row, start) = (0, 0);
                }
                let before = c.get(row..r).ok_or(Error::BadWeights)?;
                start += before.iter().map(|&n| n as usize).sum::<usize>();
                self.cursor.set((r, start));
                Ok((start, start + n))
            }
        }
    }

    /// The dense row `r` straight from the blob, or `None` when the encoding needs decoding.
    #[inline]
    pub fn dense_row(&self, r: usize) -> Option<&'a [u8]> {
        match self.w {
            WeightsDesc::Dense { data } if C::DENSE => data.get(r * self.k..(r + 1) * self.k),
            _ => None,
        }
    }

    /// Whether rows must be decoded into scratch.
    pub fn is_dense(&self) -> bool {
        C::DENSE && matches!(self.w, WeightsDesc::Dense { .. })
    }

    /// For 4-bit codebook weights (any `k`): all index bytes (weight `i` of the layer, row-major,
    /// in the low nibble of byte `i / 2` when `i` is even, the high nibble when odd) and the
    /// centroid table (entries past the codebook are 0). `None` for any other encoding.
    #[inline]
    pub fn nibbles(&self) -> Option<(&'a [u8], &[i8; 256])> {
        match self.w {
            WeightsDesc::Codebook {
                bits: 4, indices, ..
            } if C::CODEBOOK => Some((indices, &self.lut)),
            _ => None,
        }
    }

    /// For 4-bit codebook weights whose rows start on a byte (`k` even): row `r`'s `k / 2`
    /// index bytes (weight `2i` in the low nibble of byte `i`, `2i + 1` in the high nibble) and
    /// the centroid table (entries past the codebook are 0). `None` for any other encoding.
    /// The indices are those [`RowDecoder::decode_row`] checks; a validated model has them all
    /// below the codebook length.
    #[inline]
    pub fn nibble_row(&self, r: usize) -> Option<(&'a [u8], &[i8; 256])> {
        match self.w {
            WeightsDesc::Codebook {
                bits: 4, indices, ..
            } if C::CODEBOOK && self.k.is_multiple_of(2) => {
                let h = self.k / 2;
                indices.get(r * h..(r + 1) * h).map(|b| (b, &self.lut))
            }
            _ => None,
        }
    }

    /// Decodes row `r` into `out[..k]` (`out.len() >= k`). Returns `Err` only for malformed
    /// data, which [`crate::Model::from_bytes`] rules out by decoding every row once.
    pub fn decode_row(&self, r: usize, out: &mut [i8]) -> Result<(), Error> {
        let out = out.get_mut(..self.k).ok_or(Error::BadWeights)?;
        if self.is_sparse() {
            out.fill(0);
        }
        // `walk` only calls back with `pos < k == out.len()`.
        self.walk(r, |pos, v| out[pos] = v)
    }

    /// [`RowDecoder::decode_row`] for a model that passed [`crate::Model::from_bytes`] (which
    /// decoded every row with all checks): sparse rows skip the per-entry checks (a position
    /// past `k` is ignored, an index past the codebook reads 0), so malformed data decodes to
    /// unspecified values instead of an error; never out of bounds.
    #[inline]
    pub fn decode_row_validated(&self, r: usize, out: &mut [i8]) {
        let Some(out) = out.get_mut(..self.k) else {
            return;
        };
        if self.is_sparse() {
            out.fill(0);
            // Positions past `k` are ignored: see `for_each_stored_validated`.
            self.for_each_stored_validated(r, |pos, v| {
                if let Some(o) = out.get_mut(pos) {
                    *o = v;
                }
            });
        } else {
            let _ = self.decode_row(r, out);
        }
    }

    /// Whether the rows are stored as `(gap, value)` entries (plain or Huffman coded).
    #[inline]
    pub fn is_sparse(&self) -> bool {
        match self.w {
            WeightsDesc::Sparse { .. } => C::SPARSE,
            WeightsDesc::HuffSparse { .. } => C::HUFF_SPARSE,
            _ => false,
        }
    }

    /// For sparse rows of one byte per entry (gap in the low `gap_bits` bits, value symbol
    /// above): row `r`'s entry bytes, `gap_bits` and the value table. `None` for any other
    /// encoding. A validated model's rows decode without error (see
    /// [`RowDecoder::for_each_stored_validated`], which walks the same bytes).
    #[inline]
    pub fn byte_entries_row(&self, r: usize) -> Option<(&'a [u8], u32, &[i8; 256])> {
        match self.w {
            WeightsDesc::Sparse {
                values,
                gap_bits,
                row_ptr,
                entries,
            } if C::SPARSE && gap_bits as u32 + values.bits() == 8 => {
                let (a, b) = self.row_range(row_ptr, r).ok()?;
                Some((entries.get(a..b)?, gap_bits as u32, &self.lut))
            }
            _ => None,
        }
    }

    /// Stored entries (values and gap fillers) of rows `a..b` of a sparse encoding: an upper
    /// bound of their nonzero weights, read from the row index without decoding. `None` for the
    /// dense-row encodings.
    #[inline]
    pub fn stored_entries(&self, a: usize, b: usize) -> Option<usize> {
        if !self.is_sparse() {
            return None;
        }
        stored_entries(&self.w, a, b)
    }

    /// Calls `put(pos, value)` for each stored entry of sparse row `r` in order (fillers give
    /// value 0), for a model that passed [`crate::Model::from_bytes`]: no per-entry checks, so
    /// malformed data yields unspecified `(pos, value)` pairs (positions may pass `k`; callers
    /// ignore those), never a panic. Does nothing for the dense-row encodings.
    #[inline]
    pub fn for_each_stored_validated(&self, r: usize, mut put: impl FnMut(usize, i8)) {
        let lut = &self.lut;
        match self.w {
            WeightsDesc::Sparse {
                values,
                gap_bits,
                row_ptr,
                entries,
            } if C::SPARSE => {
                let (a, b) = self.row_range(row_ptr, r).unwrap_or((0, 0));
                let (gb, vb) = (gap_bits as u32, values.bits());
                let eb = (gb + vb) as usize;
                if eb == 8 {
                    // One entry per byte (e.g. 4-bit gaps and 4-bit indices): no bit reader.
                    let mut pos = 0usize;
                    let mask = (1u32 << gb) - 1;
                    for &byte in entries.get(a..b.max(a)).unwrap_or(&[]) {
                        pos += (byte as u32 & mask) as usize;
                        put(pos, lut[(byte >> gb) as usize]);
                        pos += 1;
                    }
                    return;
                }
                let mut rd = FastBits::new(entries, a * eb);
                let mut pos = 0usize;
                for _ in a..b.max(a) {
                    pos += rd.take(gb) as usize;
                    let sym = rd.take(vb) as usize;
                    put(pos, lut[sym & 0xff]);
                    pos += 1;
                }
            }
            WeightsDesc::HuffSparse {
                row_ptr,
                row_bits,
                stream,
                ..
            } if C::HUFF_SPARSE => {
                let (Some(hg), Some(hv)) = (&self.h1, &self.h2) else {
                    return;
                };
                let (a, b) = self.row_range(row_ptr, r).unwrap_or((0, 0));
                let s = self.huff_start(row_bits, r).unwrap_or(0);
                let mut rd = FastBits::new(stream, s);
                let mut pos = 0usize;
                for _ in a..b.max(a) {
                    pos += rd.huff(&self.t1, hg).unwrap_or(0) as usize;
                    let sym = rd.huff(&self.t2, hv).unwrap_or(0) as usize;
                    put(pos, lut[sym & 0xff]);
                    pos += 1;
                }
                self.huff_cursor.set((r + 1, rd.consumed));
            }
            _ => {}
        }
    }

    /// First bit of Huffman row `r`: `row_bits[r]` when the offsets are stored, else where row
    /// `r - 1` ended. Rows are read in order, so that is the cursor; a row ahead of it is
    /// reached by decoding the rows between, one behind it by starting again from row 0.
    fn huff_start(&self, row_bits: &[u8], r: usize) -> Result<usize, Error> {
        if !row_bits.is_empty() {
            return Ok(le_u32(row_bits, r)? as usize);
        }
        if self.huff_cursor.get().0 > r {
            self.huff_cursor.set((0, 0));
        }
        loop {
            let (row, bit) = self.huff_cursor.get();
            if row == r {
                return Ok(bit);
            }
            // Moves the cursor past `row` (one level deep: `row` is the cursor's row).
            self.walk(row, ignore)?;
        }
    }

    /// Ends the bit range of Huffman row `r` (which ended at bit `end`): the stored offset
    /// must match, or (offsets derived) the cursor moves on.
    fn huff_end(&self, row_bits: &[u8], r: usize, end: usize) -> Result<(), Error> {
        if row_bits.is_empty() {
            self.huff_cursor.set((r + 1, end));
            Ok(())
        } else if le_u32(row_bits, r + 1)? as usize == end {
            Ok(())
        } else {
            Err(Error::BadHuffman)
        }
    }

    /// Last bit a Huffman row may reach: its stored end, or the stream's end.
    fn huff_limit(row_bits: &[u8], r: usize, stream: &[u8]) -> Result<usize, Error> {
        if row_bits.is_empty() {
            Ok(stream.len() * 8)
        } else {
            Ok(le_u32(row_bits, r + 1)? as usize)
        }
    }

    /// First bit of Huffman row `r` (`r == cout`: the end of the stream's rows), for the
    /// encoder; 0 for other encodings.
    #[cfg(feature = "std")]
    pub(crate) fn huff_row_start(&self, r: usize) -> Result<usize, Error> {
        match self.w {
            WeightsDesc::HuffSparse { row_bits, .. }
            | WeightsDesc::HuffCodebook { row_bits, .. } => self.huff_start(row_bits, r),
            _ => Ok(0),
        }
    }

    /// After rows `0..cout` were checked in order: a Huffman stream stored without row offsets
    /// must end with its last row (at most 7 padding bits).
    pub(crate) fn check_stream_end(&self, cout: usize) -> Result<(), Error> {
        match self.w {
            WeightsDesc::HuffSparse {
                row_bits, stream, ..
            }
            | WeightsDesc::HuffCodebook {
                row_bits, stream, ..
            } if (C::HUFF_SPARSE || C::HUFF_CODEBOOK) && row_bits.is_empty() => {
                let (row, bit) = self.huff_cursor.get();
                if row != cout || bit.div_ceil(8) != stream.len() {
                    return Err(Error::BadHuffman);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Decodes row `r` without storing it (validation): the same code path as
    /// [`RowDecoder::decode_row`].
    pub fn check_row(&self, r: usize) -> Result<(), Error> {
        self.walk(r, ignore)
    }

    /// Calls `put(pos, value)` for every stored value of row `r`, with `pos < k` guaranteed;
    /// checks every index, position and stream bound on the way.
    #[inline]
    fn walk<F: FnMut(usize, i8)>(&self, r: usize, mut put: F) -> Result<(), Error> {
        let k = self.k;
        let lut = &self.lut;
        match self.w {
            WeightsDesc::Dense { data } if C::DENSE => {
                let row = data.get(r * k..(r + 1) * k).ok_or(Error::BadWeights)?;
                for (i, &b) in row.iter().enumerate() {
                    put(i, b as i8);
                }
            }
            WeightsDesc::Codebook {
                centroids,
                bits,
                indices,
            } if C::CODEBOOK => {
                let bits = bits as u32;
                if !(1..=8).contains(&bits) || (r + 1) * k * bits as usize > indices.len() * 8 {
                    return Err(Error::BadWeights);
                }
                let n = centroids.len();
                let mut rd = FastBits::new(indices, r * k * bits as usize);
                for i in 0..k {
                    let c = rd.take(bits) as usize;
                    if c >= n {
                        return Err(Error::BadWeights);
                    }
                    put(i, lut[c & 0xff]);
                }
            }
            WeightsDesc::Sparse {
                values,
                gap_bits,
                row_ptr,
                entries,
            } if C::SPARSE => {
                let (a, b) = self.row_range(row_ptr, r)?;
                let (gb, vb) = (gap_bits as u32, values.bits());
                let eb = (gb + vb) as usize;
                if !(1..=8).contains(&gb)
                    || !(1..=8).contains(&vb)
                    || b < a
                    || b.checked_mul(eb).ok_or(Error::TooLarge)? > entries.len() * 8
                {
                    return Err(Error::BadWeights);
                }
                let mut rd = FastBits::new(entries, a * eb);
                let mut pos = 0usize;
                for _ in a..b {
                    pos += rd.take(gb) as usize;
                    let sym = rd.take(vb);
                    check_sym(&values, sym)?;
                    if pos >= k {
                        return Err(Error::BadWeights);
                    }
                    put(pos, lut[sym as usize & 0xff]);
                    pos += 1;
                }
            }
            WeightsDesc::HuffSparse {
                values,
                row_ptr,
                row_bits,
                stream,
                ..
            } if C::HUFF_SPARSE => {
                let (hg, hv) = match (&self.h1, &self.h2) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Err(Error::BadHuffman),
                };
                let (a, b) = self.row_range(row_ptr, r)?;
                let s = self.huff_start(row_bits, r)?;
                let e = Self::huff_limit(row_bits, r, stream)?;
                if b < a || e < s || e > stream.len() * 8 || b - a > k {
                    return Err(Error::BadWeights);
                }
                let mut rd = FastBits::new(stream, s);
                let mut pos = 0usize;
                for _ in a..b {
                    pos += rd.huff(&self.t1, hg).ok_or(Error::BadHuffman)? as usize;
                    let sym = rd.huff(&self.t2, hv).ok_or(Error::BadHuffman)?;
                    check_sym(&values, sym)?;
                    if pos >= k || rd.consumed > e {
                        return Err(Error::BadWeights);
                    }
                    put(pos, lut[sym as usize & 0xff]);
                    pos += 1;
                }
                self.huff_end(row_bits, r, rd.consumed)?;
            }
            WeightsDesc::HuffCodebook {
                centroids,
                row_bits,
                stream,
                ..
            } if C::HUFF_CODEBOOK => {
                let h = self.h1.as_ref().ok_or(Error::BadHuffman)?;
                let s = self.huff_start(row_bits, r)?;
                let e = Self::huff_limit(row_bits, r, stream)?;
                if e < s || e > stream.len() * 8 {
                    return Err(Error::BadWeights);
                }
                let n = centroids.len();
                let mut rd = FastBits::new(stream, s);
                for i in 0..k {
                    let c = rd.huff(&self.t1, h).ok_or(Error::BadHuffman)? as usize;
                    if c >= n || rd.consumed > e {
                        return Err(Error::BadHuffman);
                    }
                    put(i, lut[c & 0xff]);
                }
                self.huff_end(row_bits, r, rd.consumed)?;
            }
            _ => return Err(Error::NotBuiltIn),
        }
        Ok(())
    }
}

/// Stored entries (values and gap fillers) of rows `a..b` of a sparse encoding, from its row
/// index; `None` for the dense-row encodings or an index too short.
pub(crate) fn stored_entries(w: &WeightsDesc<'_>, a: usize, b: usize) -> Option<usize> {
    match w {
        WeightsDesc::Sparse { row_ptr, .. } | WeightsDesc::HuffSparse { row_ptr, .. } => {
            match RowIndex::of(row_ptr) {
                RowIndex::Offsets(p) => {
                    let (x, y) = (le_u32(p, a).ok()?, le_u32(p, b).ok()?);
                    Some(y.saturating_sub(x) as usize)
                }
                RowIndex::Counts(c) => Some(c.get(a..b.max(a))?.iter().map(|&n| n as usize).sum()),
            }
        }
        _ => None,
    }
}

/// Whether a build with the switches `C` decodes `w`.
pub fn decodes<C: Caps>(w: &WeightsDesc<'_>) -> bool {
    match w {
        WeightsDesc::Dense { .. } => C::DENSE,
        WeightsDesc::Codebook { .. } => C::CODEBOOK,
        WeightsDesc::Sparse { .. } => C::SPARSE,
        WeightsDesc::HuffSparse { .. } => C::HUFF_SPARSE,
        WeightsDesc::HuffCodebook { .. } => C::HUFF_CODEBOOK,
    }
}

/// Stored Huffman row offsets (u32: a row's bits are not counted in bytes) must cover the
/// stream exactly; without them the row walk checks the stream's end (`check_stream_end`).
fn check_row_bits(row_bits: &[u8], cout: usize, stream: &[u8]) -> Result<(), Error> {
    if row_bits.is_empty() {
        return Ok(());
    }
    RowIndex::Offsets(row_bits).validate(cout)?;
    if (le_u32(row_bits, cout)? as usize).div_ceil(8) != stream.len() {
        return Err(Error::BadWeights);
    }
    Ok(())
}

/// A `put` for walks that only check (one function type, so one copy of `walk`).
fn ignore(_: usize, _: i8) {}

fn check_sym(values: &Values<'_>, sym: u32) -> Result<(), Error> {
    match values {
        Values::Raw => Ok(()),
        Values::Codebook { centroids, .. } => {
            if (sym as usize) < centroids.len() {
                Ok(())
            } else {
                Err(Error::BadWeights)
            }
        }
    }
}

/// Structural checks of an encoding for `cout` rows of `k` values (sizes, widths, offsets); the
/// caller then decodes every row once to check the content.
pub(crate) fn validate_weights<C: Caps>(
    w: &WeightsDesc<'_>,
    cout: usize,
    k: usize,
) -> Result<(), Error> {
    let total = cout.checked_mul(k).ok_or(Error::BadWeights)?;
    match w {
        WeightsDesc::Dense { data } if C::DENSE => {
            if data.len() != total {
                return Err(Error::BadWeights);
            }
        }
        WeightsDesc::Codebook {
            centroids,
            bits,
            indices,
        } if C::CODEBOOK => {
            Values::Codebook {
                centroids,
                bits: *bits,
            }
            .validate()?;
            if indices.len() != (total * *bits as usize).div_ceil(8) {
                return Err(Error::BadWeights);
            }
        }
        WeightsDesc::Sparse {
            values,
            gap_bits,
            row_ptr,
            entries,
        } if C::SPARSE => {
            values.validate()?;
            if !(1..=8).contains(gap_bits) {
                return Err(Error::BadWeights);
            }
            let n = RowIndex::of(row_ptr).validate(cout)?;
            let eb = *gap_bits as usize + values.bits() as usize;
            if entries.len() != (n * eb).div_ceil(8) {
                return Err(Error::BadWeights);
            }
        }
        WeightsDesc::HuffSparse {
            values,
            gap_lengths,
            value_lengths,
            row_ptr,
            row_bits,
            stream,
        } if C::HUFF_SPARSE => {
            values.validate()?;
            if value_lengths.len() != 1 << values.bits() || gap_lengths.len() > 256 {
                return Err(Error::BadHuffman);
            }
            RowIndex::of(row_ptr).validate(cout)?;
            check_row_bits(row_bits, cout, stream)?;
        }
        WeightsDesc::HuffCodebook {
            centroids,
            lengths,
            row_bits,
            stream,
        } if C::HUFF_CODEBOOK => {
            if centroids.is_empty() || centroids.len() > 256 || lengths.len() != centroids.len() {
                return Err(Error::BadHuffman);
            }
            check_row_bits(row_bits, cout, stream)?;
        }
        _ => return Err(Error::NotBuiltIn),
    }
    Ok(())
}
