//! [`Model`]: a validated, zero-copy view of a blob, its shape chain and its arena plan.

use crate::caps::{Caps, Everything, Used};
use crate::dims::Dims;
use crate::error::{Error, MAX_LAYERS};
use crate::format::read::take_desc;
use crate::format::{Bypass, ConvDesc, LayerDesc, ModelHead, split_header};
use crate::kernels::sparse_stem_pays;
use crate::plan::{conv_params, input_quant_ok, plan_layers, step, zero_skip_takes};
use crate::quant::QuantParams;
use crate::weights::{RowDecoder, WeightsDesc, stored_entries};

/// A validated model borrowing the blob. After [`Model::from_bytes`] succeeds, `run`
/// cannot fail or panic.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    model_id: u64,
    head: ModelHead,
    layers: &'a [u8],
    output_quant: QuantParams,
    observed_arena: usize,
}

/// Everything about one layer, for reporting and verification.
#[derive(Debug, Clone, Copy)]
pub struct LayerInfo<'a> {
    /// Index in the network.
    pub index: u16,
    /// The description (kind, parameters, weights).
    pub desc: LayerDesc<'a>,
    /// Input dims.
    pub input: Dims,
    /// Output dims.
    pub output: Dims,
    /// Input quantisation.
    pub in_quant: QuantParams,
    /// Output quantisation.
    pub out_quant: QuantParams,
}

impl<'a> Model<'a> {
    /// Validates a blob completely: header, version, length, CRC-32, description, shape chain,
    /// quantisation parameters (the standard input quantisation, shifts in range), the arena
    /// size and every weight row (codebook indices, sparse positions, Huffman tables and
    /// streams).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>, Error> {
        Self::from_bytes_for::<Everything>(bytes)
    }

    /// [`Model::from_bytes`] for a build carrying only the decoders and kernels of `C`: a blob
    /// that needs more is [`Error::NotBuiltIn`]; the weight rows are checked with `C`'s
    /// decoders (the ones `run` will use).
    pub fn from_bytes_for<C: Caps>(bytes: &'a [u8]) -> Result<Model<'a>, Error> {
        let (model_id, payload) = split_header(bytes)?;
        let (head, layers): (ModelHead, &[u8]) = take_desc(payload)?;
        let n = head.num_layers as usize;
        if n == 0 || n > MAX_LAYERS {
            return Err(Error::BadLayerCount);
        }
        if head.input.is_empty() || head.num_classes == 0 {
            return Err(Error::BadShape(0));
        }
        if !input_quant_ok(&head.input_quant) {
            return Err(Error::BadQuant(0));
        }
        let mut rest = layers;
        let (arena, observed_arena, dims, q) =
            plan_layers::<C>(head.input, head.input_quant, n, || {
                let (l, r): (LayerDesc<'a>, &[u8]) = take_desc(rest)?;
                rest = r;
                Ok(l)
            })?;
        if !rest.is_empty() {
            return Err(Error::BadLayerCount);
        }
        if dims
            != (Dims {
                h: 1,
                w: 1,
                c: head.num_classes,
            })
        {
            return Err(Error::BadOutput);
        }
        if arena != head.arena_len as usize {
            return Err(Error::BadArena);
        }
        Ok(Model {
            model_id,
            head,
            layers,
            output_quant: q,
            observed_arena,
        })
    }

    /// Arena bytes `run` needs (exact for the documented plan).
    pub fn arena_len(&self) -> usize {
        self.head.arena_len as usize
    }
    /// Arena bytes `run_observed` needs: every layer runs whole, so that each
    /// intermediate tensor can be observed (at least [`Model::arena_len`]).
    pub fn observed_arena_len(&self) -> usize {
        self.observed_arena
    }
    /// Input dims (`h x w x c`, NHWC).
    pub fn input_dims(&self) -> Dims {
        self.head.input
    }
    /// Input length in bytes.
    pub fn input_len(&self) -> usize {
        self.head.input.len()
    }
    /// Number of classes (logits).
    pub fn num_classes(&self) -> usize {
        self.head.num_classes as usize
    }
    /// Input quantisation.
    pub fn input_quant(&self) -> QuantParams {
        self.head.input_quant
    }
    /// Quantisation of the logits.
    pub fn output_quant(&self) -> QuantParams {
        self.output_quant
    }
    /// Model id from the header.
    pub fn model_id(&self) -> u64 {
        self.model_id
    }
    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.head.num_layers as usize
    }
    /// What the model needs a build to carry (see `caps`). Reads the description only (no
    /// weight row is decoded), so it may run before the weights are checked.
    pub fn uses(&self) -> Used {
        let mut used = Used::default();
        for l in self.layers() {
            for (conv, input) in l.convs() {
                conv_uses(&mut used, &conv, input);
            }
            match l.desc {
                LayerDesc::MaxPool(_) => used.maxpool_any_channels |= l.input.c % 4 != 0,
                LayerDesc::AvgPool(_) => used.avg_pool = true,
                LayerDesc::GlobalAvgPool(_) => used.global_avg_pool = true,
                LayerDesc::Fire(f) => used.bypass |= !matches!(f.bypass, Bypass::None),
                LayerDesc::Conv(_) => {}
            }
        }
        used
    }

    /// Iterates the layers with their shapes and quantisation.
    pub fn layers(&self) -> LayerIter<'a> {
        LayerIter {
            rest: self.layers,
            index: 0,
            n: self.head.num_layers,
            dims: self.head.input,
            q: self.head.input_quant,
        }
    }
}

/// Iterator over a validated model's layers.
#[derive(Debug, Clone)]
pub struct LayerIter<'a> {
    rest: &'a [u8],
    index: u16,
    n: u16,
    dims: Dims,
    q: QuantParams,
}

impl<'a> Iterator for LayerIter<'a> {
    type Item = LayerInfo<'a>;
    fn next(&mut self) -> Option<LayerInfo<'a>> {
        if self.index >= self.n {
            return None;
        }
        let (l, r): (LayerDesc<'a>, &[u8]) = take_desc(self.rest).ok()?;
        let first = self.index == 0;
        let last = self.index + 1 == self.n;
        let (d, oq, _) = step(&l, self.dims, self.q, self.index, first, last).ok()?;
        let info = LayerInfo {
            index: self.index,
            desc: l,
            input: self.dims,
            output: d,
            in_quant: self.q,
            out_quant: oq,
        };
        self.rest = r;
        self.index += 1;
        self.dims = d;
        self.q = oq;
        Some(info)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.n - self.index) as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for LayerIter<'_> {}

/// A conv's weight encoding, which driver runs it (the zero-skipping one where it takes the
/// rows, else the packed one) and which Cortex-M4 stem (1-channel 3x3: the zero-skipping one
/// where it pays, `kernels::sparse_stem_pays`, else the dense one).
fn conv_uses(used: &mut Used, c: &ConvDesc<'_>, input: Dims) {
    match c.weights {
        WeightsDesc::Dense { .. } => used.dense = true,
        WeightsDesc::Codebook { .. } => used.codebook = true,
        WeightsDesc::Sparse { .. } => used.sparse = true,
        WeightsDesc::HuffSparse { .. } => used.huff_sparse = true,
        WeightsDesc::HuffCodebook { .. } => used.huff_codebook = true,
    }
    let zero_skip = conv_params(c, input)
        .is_some_and(|p| RowDecoder::new(c.weights, p.k()).is_ok_and(|d| zero_skip_takes(&p, &d)));
    used.packed |= !zero_skip;
    if input.c == 1 && c.kernel == [3, 3] {
        let cout = c.out_channels as usize;
        let entries = stored_entries(&c.weights, 0, cout);
        if entries.is_some_and(|e| sparse_stem_pays(e, cout)) {
            used.stem_sparse = true;
        } else {
            used.stem_dense = true;
        }
    }
}

impl<'a> LayerInfo<'a> {
    /// The layer's convolutions with their inputs: one for a conv, three or four for a fire
    /// (squeeze, expands, bypass conv), none for a pool.
    pub fn convs(&self) -> impl Iterator<Item = (ConvDesc<'a>, Dims)> + use<'a> {
        let none = || [None, None, None, None];
        let convs = match self.desc {
            LayerDesc::Conv(c) => [Some((c, self.input)), None, None, None],
            LayerDesc::Fire(f) => {
                let sq = Dims {
                    c: f.squeeze.out_channels,
                    ..self.input
                };
                let bypass = match f.bypass {
                    Bypass::Complex { conv, .. } => Some((conv, self.input)),
                    Bypass::None | Bypass::Simple { .. } => None,
                };
                [
                    Some((f.squeeze, self.input)),
                    Some((f.expand1, sq)),
                    Some((f.expand3, sq)),
                    bypass,
                ]
            }
            LayerDesc::MaxPool(_) | LayerDesc::AvgPool(_) | LayerDesc::GlobalAvgPool(_) => none(),
        };
        convs.into_iter().flatten()
    }
}

impl ConvDesc<'_> {
    /// Channel `c`'s bias in accumulator units (`bias[c] << bias_shift`; 0 past the end).
    pub fn bias_at(&self, c: usize) -> i32 {
        crate::quant::bias_value(crate::bytes::le_i16_at(self.bias, c), self.bias_shift)
    }

    /// Channel `c`'s u16 multiplier (0 past the end).
    pub fn multiplier_at(&self, c: usize) -> u16 {
        crate::bytes::le_u16_at(self.multipliers, c)
    }

    /// Decodes all weights to dense OHWI int8 (`out.len() >= cout * kh * kw * in_channels`), for
    /// exporting or checking.
    pub fn decode_weights(&self, in_channels: usize, out: &mut [i8]) -> Result<(), Error> {
        let k = self.kernel[0] as usize * self.kernel[1] as usize * in_channels;
        let d = RowDecoder::new(self.weights, k)?;
        for r in 0..self.out_channels as usize {
            d.decode_row(r, out.get_mut(r * k..(r + 1) * k).ok_or(Error::BadWeights)?)?;
        }
        Ok(())
    }
}
