//! Blob building helpers (feature `std`): owned weight encodings and convolutions that lend
//! [`WeightsDesc`] / [`ConvDesc`] views to `format::encode`.
//!
//! The compressor supplies dense int8 weights, or centroids + per-weight indices; these helpers
//! produce every encoding of the format (bit packing, sparse gaps with fillers, canonical
//! Huffman code lengths and streams).

extern crate std;
use std::vec;
use std::vec::Vec;

use crate::format::{ConvDesc, Error, Pad, QuantParams, Values, WeightsDesc};
use crate::quant::{channel_multipliers, compact_biases, conv_multiplier};
use crate::weights::{MAX_CODE_LEN, ROW_COUNTS, RowDecoder};

/// LSB-first bit writer.
#[derive(Debug, Default, Clone)]
pub struct BitWriter {
    bytes: Vec<u8>,
    nbits: usize,
}

impl BitWriter {
    /// Appends the `n` low bits of `v`, LSB first.
    pub fn put(&mut self, v: u32, n: u32) {
        for i in 0..n {
            self.bit((v >> i) & 1);
        }
    }
    /// Appends one bit.
    pub fn bit(&mut self, b: u32) {
        if self.nbits.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b != 0 {
            *self.bytes.last_mut().unwrap() |= 1 << (self.nbits % 8);
        }
        self.nbits += 1;
    }
    /// Bits written.
    pub fn len(&self) -> usize {
        self.nbits
    }
    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.nbits == 0
    }
    /// The bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Canonical Huffman code lengths (<= 15) for symbol frequencies (0 = unused symbol). A lone
/// used symbol gets length 1.
pub fn huffman_lengths(freqs: &[u64]) -> Vec<u8> {
    let mut f: Vec<u64> = freqs.to_vec();
    loop {
        let lens = huffman_lengths_unlimited(&f);
        if lens.iter().all(|&l| (l as usize) <= MAX_CODE_LEN) {
            return lens;
        }
        for x in f.iter_mut() {
            if *x > 0 {
                *x = (*x / 2).max(1);
            }
        }
    }
}

fn huffman_lengths_unlimited(freqs: &[u64]) -> Vec<u8> {
    let used: Vec<usize> = (0..freqs.len()).filter(|&i| freqs[i] > 0).collect();
    let mut lens = vec![0u8; freqs.len()];
    if used.len() == 1 {
        lens[used[0]] = 1;
        return lens;
    }
    // Nodes: (weight, id); parents tracked for depth.
    let mut parent: Vec<usize> = vec![usize::MAX; used.len()];
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize)>> = used
        .iter()
        .enumerate()
        .map(|(n, &s)| std::cmp::Reverse((freqs[s], n)))
        .collect();
    while heap.len() > 1 {
        let std::cmp::Reverse((wa, a)) = heap.pop().unwrap();
        let std::cmp::Reverse((wb, b)) = heap.pop().unwrap();
        let id = parent.len();
        parent.push(usize::MAX);
        parent[a] = id;
        parent[b] = id;
        heap.push(std::cmp::Reverse((wa + wb, id)));
    }
    for (n, &s) in used.iter().enumerate() {
        let mut d = 0;
        let mut x = n;
        while parent[x] != usize::MAX {
            x = parent[x];
            d += 1;
        }
        lens[s] = d.min(255) as u8;
    }
    lens
}

/// Canonical codes for lengths: `codes[s]` (MSB-first value of `lengths[s]` bits).
pub fn canonical_codes(lengths: &[u8]) -> Vec<u32> {
    let mut bl_count = [0u32; MAX_CODE_LEN + 1];
    for &l in lengths {
        if l > 0 {
            bl_count[l as usize] += 1;
        }
    }
    let mut next = [0u32; MAX_CODE_LEN + 2];
    let mut code = 0u32;
    for bits in 1..=MAX_CODE_LEN {
        code = (code + bl_count[bits - 1]) << 1;
        next[bits] = code;
    }
    // bl_count[0] must not count: recompute without it.
    let mut next2 = [0u32; MAX_CODE_LEN + 2];
    let mut code = 0u32;
    let mut prev = 0u32;
    for bits in 1..=MAX_CODE_LEN {
        code = (code + prev) << 1;
        next2[bits] = code;
        prev = bl_count[bits];
    }
    let _ = next;
    lengths
        .iter()
        .map(|&l| {
            if l == 0 {
                0
            } else {
                let c = next2[l as usize];
                next2[l as usize] += 1;
                c
            }
        })
        .collect()
}

fn put_code(w: &mut BitWriter, code: u32, len: u8) {
    for i in (0..len).rev() {
        w.bit((code >> i) & 1);
    }
}

/// Owned weight encoding; [`OwnedWeights::desc`] lends the zero-copy view.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedWeights {
    /// Dense int8.
    Dense(Vec<u8>),
    /// Codebook.
    Codebook {
        /// Centroids.
        centroids: Vec<u8>,
        /// Index bits.
        bits: u8,
        /// Packed indices.
        indices: Vec<u8>,
    },
    /// Sparse.
    Sparse {
        /// Centroids (`None`: raw values).
        centroids: Option<(Vec<u8>, u8)>,
        /// Gap bits.
        gap_bits: u8,
        /// Row index (`weights::RowIndex`).
        row_ptr: Vec<u8>,
        /// Packed entries.
        entries: Vec<u8>,
    },
    /// Huffman-coded sparse.
    HuffSparse {
        /// Centroids (`None`: raw values).
        centroids: Option<(Vec<u8>, u8)>,
        /// Gap code lengths.
        gap_lengths: Vec<u8>,
        /// Value code lengths.
        value_lengths: Vec<u8>,
        /// Row index (`weights::RowIndex`).
        row_ptr: Vec<u8>,
        /// Row bit offsets: empty (rows follow each other), or see
        /// [`OwnedWeights::with_row_offsets`].
        row_bits: Vec<u8>,
        /// Stream.
        stream: Vec<u8>,
    },
    /// Huffman-coded codebook indices.
    HuffCodebook {
        /// Centroids.
        centroids: Vec<u8>,
        /// Code lengths.
        lengths: Vec<u8>,
        /// Row bit offsets: empty (rows follow each other), or see
        /// [`OwnedWeights::with_row_offsets`].
        row_bits: Vec<u8>,
        /// Stream.
        stream: Vec<u8>,
    },
}

fn bytes_i8(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The row index of rows holding `counts` entries (`weights::RowIndex`): one byte per row
/// when every row fits, else u32 offsets.
fn row_index(counts: &[usize]) -> Vec<u8> {
    match counts
        .iter()
        .map(|&n| u8::try_from(n))
        .collect::<Result<Vec<u8>, _>>()
    {
        Ok(narrow) => [ROW_COUNTS].into_iter().chain(narrow).collect(),
        Err(_) => {
            let mut offsets = vec![0u32];
            for &n in counts {
                offsets.push(offsets.last().unwrap() + n as u32);
            }
            u32s(&offsets)
        }
    }
}

/// The sparse entries `(gap, symbol)` of one row, fillers included. `zero_sym` is the symbol
/// whose value is 0; `max_gap` the largest gap representable.
fn sparse_entries(
    syms: &[u32],
    is_zero: &dyn Fn(u32) -> bool,
    zero_sym: u32,
    max_gap: u32,
) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut gap = 0u32;
    for &s in syms {
        if is_zero(s) {
            gap += 1;
            continue;
        }
        while gap > max_gap {
            out.push((max_gap, zero_sym));
            gap -= max_gap + 1;
        }
        out.push((gap, s));
        gap = 0;
    }
    out
}

/// Symbols of a weight tensor for sparse encodings: raw bytes or codebook indices.
#[derive(Debug, Clone, Copy)]
pub enum SparseSource<'a> {
    /// Dense int8 weights (`cout * k`).
    Raw(&'a [i8]),
    /// Centroids and one index per weight (`cout * k`); one centroid must be 0 (fillers).
    Codebook {
        /// Centroids.
        centroids: &'a [i8],
        /// Index width (2..=8).
        bits: u8,
        /// Indices.
        indices: &'a [u8],
    },
}

impl SparseSource<'_> {
    fn syms(&self) -> Vec<u32> {
        match self {
            SparseSource::Raw(w) => w.iter().map(|&x| x as u8 as u32).collect(),
            SparseSource::Codebook { indices, .. } => indices.iter().map(|&x| x as u32).collect(),
        }
    }
    fn zero_sym(&self) -> Result<u32, Error> {
        match self {
            SparseSource::Raw(_) => Ok(0),
            SparseSource::Codebook { centroids, .. } => centroids
                .iter()
                .position(|&c| c == 0)
                .map(|p| p as u32)
                .ok_or(Error::BadWeights),
        }
    }
    fn value_bits(&self) -> u32 {
        match self {
            SparseSource::Raw(_) => 8,
            SparseSource::Codebook { bits, .. } => *bits as u32,
        }
    }
    fn centroids(&self) -> Option<(Vec<u8>, u8)> {
        match self {
            SparseSource::Raw(_) => None,
            SparseSource::Codebook {
                centroids, bits, ..
            } => Some((bytes_i8(centroids), *bits)),
        }
    }
    fn is_zero(&self, s: u32) -> bool {
        match self {
            SparseSource::Raw(_) => s == 0,
            SparseSource::Codebook { centroids, .. } => centroids.get(s as usize) == Some(&0),
        }
    }
}

impl OwnedWeights {
    /// Dense OHWI int8.
    pub fn dense(w: &[i8]) -> Self {
        OwnedWeights::Dense(bytes_i8(w))
    }

    /// Codebook with one index per weight (`indices[i] < centroids.len() <= 2^bits`).
    pub fn codebook(centroids: &[i8], bits: u8, indices: &[u8]) -> Result<Self, Error> {
        if !(2..=8).contains(&bits) || centroids.is_empty() || centroids.len() > 1 << bits {
            return Err(Error::BadWeights);
        }
        let mut w = BitWriter::default();
        for &i in indices {
            if i as usize >= centroids.len() {
                return Err(Error::BadWeights);
            }
            w.put(i as u32, bits as u32);
        }
        Ok(OwnedWeights::Codebook {
            centroids: bytes_i8(centroids),
            bits,
            indices: w.into_bytes(),
        })
    }

    /// Codebook by nearest centroid for every dense weight (ties: lower index).
    pub fn codebook_nearest(w: &[i8], centroids: &[i8], bits: u8) -> Result<Self, Error> {
        let idx: Vec<u8> = w
            .iter()
            .map(|&x| {
                (0..centroids.len())
                    .min_by_key(|&i| (centroids[i] as i32 - x as i32).abs())
                    .unwrap_or(0) as u8
            })
            .collect();
        Self::codebook(centroids, bits, &idx)
    }

    /// Sparse rows (`cout` rows of `k`) with `gap_bits`-wide relative indices.
    pub fn sparse(
        src: SparseSource<'_>,
        cout: usize,
        k: usize,
        gap_bits: u8,
    ) -> Result<Self, Error> {
        if !(1..=8).contains(&gap_bits) {
            return Err(Error::BadWeights);
        }
        let syms = src.syms();
        if syms.len() != cout * k {
            return Err(Error::BadWeights);
        }
        let zero = src.zero_sym()?;
        let vb = src.value_bits();
        let mut w = BitWriter::default();
        let mut counts = Vec::with_capacity(cout);
        for r in 0..cout {
            let e = sparse_entries(
                &syms[r * k..(r + 1) * k],
                &|s| src.is_zero(s),
                zero,
                (1 << gap_bits) - 1,
            );
            for (g, s) in &e {
                w.put(*g, gap_bits as u32);
                w.put(*s, vb);
            }
            counts.push(e.len());
        }
        Ok(OwnedWeights::Sparse {
            centroids: src.centroids(),
            gap_bits,
            row_ptr: row_index(&counts),
            entries: w.into_bytes(),
        })
    }

    /// Sparse rows whose gaps (`< max_gap + 1` symbols, <= 256) and values are Huffman coded.
    pub fn huff_sparse(
        src: SparseSource<'_>,
        cout: usize,
        k: usize,
        max_gap: u32,
    ) -> Result<Self, Error> {
        if max_gap == 0 || max_gap > 255 {
            return Err(Error::BadWeights);
        }
        let syms = src.syms();
        if syms.len() != cout * k {
            return Err(Error::BadWeights);
        }
        let zero = src.zero_sym()?;
        let rows: Vec<Vec<(u32, u32)>> = (0..cout)
            .map(|r| {
                sparse_entries(
                    &syms[r * k..(r + 1) * k],
                    &|s| src.is_zero(s),
                    zero,
                    max_gap,
                )
            })
            .collect();
        let mut gf = vec![0u64; max_gap as usize + 1];
        let mut vf = vec![0u64; 1 << src.value_bits()];
        for e in rows.iter().flatten() {
            gf[e.0 as usize] += 1;
            vf[e.1 as usize] += 1;
        }
        // Keep every table non-empty.
        if gf.iter().all(|&f| f == 0) {
            gf[0] = 1;
        }
        if vf.iter().all(|&f| f == 0) {
            vf[0] = 1;
        }
        let (gl, vl) = (huffman_lengths(&gf), huffman_lengths(&vf));
        let (gc, vc) = (canonical_codes(&gl), canonical_codes(&vl));
        let mut w = BitWriter::default();
        let mut counts = Vec::with_capacity(cout);
        for e in &rows {
            for (g, s) in e {
                put_code(&mut w, gc[*g as usize], gl[*g as usize]);
                put_code(&mut w, vc[*s as usize], vl[*s as usize]);
            }
            counts.push(e.len());
        }
        Ok(OwnedWeights::HuffSparse {
            centroids: src.centroids(),
            gap_lengths: gl,
            value_lengths: vl,
            row_ptr: row_index(&counts),
            row_bits: Vec::new(),
            stream: w.into_bytes(),
        })
    }

    /// Huffman-coded dense codebook indices (`cout` rows of `k`).
    pub fn huff_codebook(
        centroids: &[i8],
        indices: &[u8],
        cout: usize,
        k: usize,
    ) -> Result<Self, Error> {
        if centroids.is_empty() || centroids.len() > 256 || indices.len() != cout * k {
            return Err(Error::BadWeights);
        }
        let mut f = vec![0u64; centroids.len()];
        for &i in indices {
            *f.get_mut(i as usize).ok_or(Error::BadWeights)? += 1;
        }
        let l = huffman_lengths(&f);
        let c = canonical_codes(&l);
        let mut w = BitWriter::default();
        for &i in indices {
            put_code(&mut w, c[i as usize], l[i as usize]);
        }
        Ok(OwnedWeights::HuffCodebook {
            centroids: bytes_i8(centroids),
            lengths: l,
            row_bits: Vec::new(),
            stream: w.into_bytes(),
        })
    }

    /// The same weights with each Huffman row's first bit stored (`cout + 1` u32 offsets, as
    /// blobs had them before the decoders derived them), for `cout` rows of `k`. Other
    /// encodings come back unchanged.
    pub fn with_row_offsets(self, cout: usize, k: usize) -> Result<Self, Error> {
        let offsets = {
            let d = RowDecoder::new(self.desc(), k)?;
            let mut bits = Vec::with_capacity(cout + 1);
            for r in 0..cout {
                bits.push(d.huff_row_start(r)? as u32);
                d.check_row(r)?;
            }
            bits.push(d.huff_row_start(cout)? as u32);
            u32s(&bits)
        };
        Ok(match self {
            OwnedWeights::HuffSparse {
                centroids,
                gap_lengths,
                value_lengths,
                row_ptr,
                stream,
                ..
            } => OwnedWeights::HuffSparse {
                centroids,
                gap_lengths,
                value_lengths,
                row_ptr,
                row_bits: offsets,
                stream,
            },
            OwnedWeights::HuffCodebook {
                centroids,
                lengths,
                stream,
                ..
            } => OwnedWeights::HuffCodebook {
                centroids,
                lengths,
                row_bits: offsets,
                stream,
            },
            other => other,
        })
    }

    /// The zero-copy view.
    pub fn desc(&self) -> WeightsDesc<'_> {
        fn vals(c: &Option<(Vec<u8>, u8)>) -> Values<'_> {
            match c {
                None => Values::Raw,
                Some((c, b)) => Values::Codebook {
                    centroids: c,
                    bits: *b,
                },
            }
        }
        match self {
            OwnedWeights::Dense(d) => WeightsDesc::Dense { data: d },
            OwnedWeights::Codebook {
                centroids,
                bits,
                indices,
            } => WeightsDesc::Codebook {
                centroids,
                bits: *bits,
                indices,
            },
            OwnedWeights::Sparse {
                centroids,
                gap_bits,
                row_ptr,
                entries,
            } => WeightsDesc::Sparse {
                values: vals(centroids),
                gap_bits: *gap_bits,
                row_ptr,
                entries,
            },
            OwnedWeights::HuffSparse {
                centroids,
                gap_lengths,
                value_lengths,
                row_ptr,
                row_bits,
                stream,
            } => WeightsDesc::HuffSparse {
                values: vals(centroids),
                gap_lengths,
                value_lengths,
                row_ptr,
                row_bits,
                stream,
            },
            OwnedWeights::HuffCodebook {
                centroids,
                lengths,
                row_bits,
                stream,
            } => WeightsDesc::HuffCodebook {
                centroids,
                lengths,
                row_bits,
                stream,
            },
        }
    }
}

/// An owned convolution; [`OwnedConv::desc`] lends the [`ConvDesc`] view.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedConv {
    /// Output channels.
    pub out_channels: u16,
    /// `[kh, kw]`.
    pub kernel: [u8; 2],
    /// `[sh, sw]`.
    pub stride: [u8; 2],
    /// `[t, l, b, r]`.
    pub pad: Pad,
    /// Fused ReLU.
    pub relu: bool,
    /// Weights.
    pub weights: OwnedWeights,
    /// i16 LE bias bytes.
    pub bias: Vec<u8>,
    /// Left shift of the biases.
    pub bias_shift: u8,
    /// u16 LE multiplier bytes.
    pub multipliers: Vec<u8>,
    /// The layer's shift.
    pub shift: u8,
    /// Output quantisation.
    pub out_quant: QuantParams,
}

impl OwnedConv {
    /// Builds a conv from the f32 weight scales of training: each channel's real multiplier is
    /// `conv_multiplier(in_scale, w_scale[c], out_quant.scale)` (the input scale is the
    /// quantisation of the tensor this conv reads), then made integer like
    /// [`OwnedConv::from_multipliers`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kernel: [u8; 2],
        stride: [u8; 2],
        pad: Pad,
        relu: bool,
        weights: OwnedWeights,
        bias: &[i32],
        w_scales: &[f32],
        in_scale: f32,
        out_quant: QuantParams,
    ) -> Result<Self, Error> {
        let mults: Vec<f32> = w_scales
            .iter()
            .map(|&s| conv_multiplier(in_scale, s, out_quant.scale))
            .collect();
        Self::from_multipliers(kernel, stride, pad, relu, weights, bias, &mults, out_quant)
    }

    /// Builds a conv from i32 biases and real (f32) channel multipliers: the biases become i16
    /// with a shift (`quant::compact_biases`), the multipliers u16 with the layer's shift
    /// (`quant::channel_multipliers`). `Error::BadQuant(0)` when a multiplier has no integer
    /// form (not finite and positive, or `>= 0.5`) or the lengths differ.
    #[allow(clippy::too_many_arguments)]
    pub fn from_multipliers(
        kernel: [u8; 2],
        stride: [u8; 2],
        pad: Pad,
        relu: bool,
        weights: OwnedWeights,
        bias: &[i32],
        mults: &[f32],
        out_quant: QuantParams,
    ) -> Result<Self, Error> {
        if bias.len() != mults.len() || bias.len() > u16::MAX as usize {
            return Err(Error::BadQuant(0));
        }
        let mut m = vec![0u16; mults.len()];
        let shift = channel_multipliers(mults, &mut m).ok_or(Error::BadQuant(0))?;
        let mut b = vec![0i16; bias.len()];
        let bias_shift = compact_biases(bias, &mut b);
        Ok(OwnedConv {
            out_channels: bias.len() as u16,
            kernel,
            stride,
            pad,
            relu,
            weights,
            bias: b.iter().flat_map(|x| x.to_le_bytes()).collect(),
            bias_shift,
            multipliers: m.iter().flat_map(|x| x.to_le_bytes()).collect(),
            shift,
            out_quant,
        })
    }

    /// The zero-copy view.
    pub fn desc(&self) -> ConvDesc<'_> {
        ConvDesc {
            out_channels: self.out_channels,
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
            relu: self.relu,
            weights: self.weights.desc(),
            bias: &self.bias,
            bias_shift: self.bias_shift,
            multipliers: &self.multipliers,
            shift: self.shift,
            out_quant: self.out_quant,
        }
    }
}
