//! `sqz recode`: the same model with its weights stored another way. Every value, scale,
//! multiplier and layer stays byte for byte; only the weight encoding of each conv changes
//! (e.g. the smallest Huffman-sparse coding for flash, or packed codebook indices for speed), so
//! the new blob computes exactly the same logits (checked on images before anything is written).
//! A blob of the older f32-requantisation format is first carried over by [`super::upgrade`].

use anyhow::{Result, anyhow, bail};
use shared::Model;
use shared::encode::{OwnedConv, OwnedWeights};
use shared::format::{Bypass, ConvDesc, FireDesc, LayerDesc, ModelDesc};

/// How to store the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// The smallest of codebook, Huffman codebook, sparse and Huffman sparse, per layer.
    Smallest,
    /// The fewest device instructions, per conv: packed codebook indices (dense rows, the
    /// cheapest to decode), or sparse rows of one byte per entry (gap and codebook index) where
    /// the device's zero-skipping kernels win at that density and output size (e.g. at most
    /// 20 % nonzero on a 3x3 map, 40 % on 14x14; a 1-channel 3x3 stem up to 55 %).
    FastDecode,
    /// One driver on the device: byte-entry sparse rows for every conv the zero-skipping
    /// kernels can run (at most half the weights nonzero, 30 % under 16 output pixels), packed
    /// codebook rows only where they cannot. A blob with no packed rows lets the firmware leave
    /// the packed driver out (about 3 KB less code) for some more instructions than
    /// `fast-decode`.
    ZeroSkip,
    /// As `zero-skip`, with the smallest of plain and Huffman-coded sparse rows per conv: the
    /// smallest blob the zero-skipping driver alone runs.
    ZeroSkipSmallest,
}

/// `npix`: the conv's output pixels (the fast-decode choice depends on them).
fn recode_conv(c: &ConvDesc<'_>, cin: usize, npix: usize, encoding: Encoding) -> Result<OwnedConv> {
    let cout = c.out_channels as usize;
    let k = c.kernel[0] as usize * c.kernel[1] as usize * cin;
    let mut w = vec![0i8; cout * k];
    c.decode_weights(cin, &mut w)
        .map_err(|e| anyhow!("weights: {e}"))?;
    let mut centroids: Vec<i8> = w.clone();
    centroids.sort_unstable();
    centroids.dedup();
    let weights = if centroids.len() > 256 {
        OwnedWeights::dense(&w)
    } else {
        let bits = (usize::BITS - (centroids.len() - 1).max(1).leading_zeros()).max(2) as u8;
        let idx: Vec<u8> = w
            .iter()
            .map(|v| centroids.binary_search(v).unwrap_or(0) as u8)
            .collect();
        let stem = cin == 1 && c.kernel == [3, 3];
        match encoding {
            Encoding::FastDecode => {
                super::sharing::fastest_encoding(&idx, &centroids, bits, cout, k, stem, npix)?
            }
            Encoding::ZeroSkip | Encoding::ZeroSkipSmallest => super::sharing::zero_skip_encoding(
                &idx,
                &centroids,
                bits,
                (cout, k, npix),
                encoding == Encoding::ZeroSkipSmallest,
            )?,
            Encoding::Smallest => {
                super::sharing::smallest_encoding(&idx, &centroids, bits, cout, k)?
            }
        }
    };
    Ok(OwnedConv {
        out_channels: c.out_channels,
        kernel: c.kernel,
        stride: c.stride,
        pad: c.pad,
        relu: c.relu,
        weights,
        bias: c.bias.to_vec(),
        bias_shift: c.bias_shift,
        multipliers: c.multipliers.to_vec(),
        shift: c.shift,
        out_quant: c.out_quant,
    })
}

/// Re-encodes every conv's weights of `blob` (re-planning its arena if an older build made
/// it); `check` images (raw pixels) must give identical logits on both blobs.
pub fn recode<'a>(
    blob: &[u8],
    encoding: Encoding,
    check: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>> {
    // A blob of the f32-requantisation format is carried over to the integer one first; a blob
    // from an older build carries that build's arena plan: re-plan it.
    let upgraded;
    let blob = if super::upgrade::format_version(blob) == Some(super::upgrade::LEGACY_VERSION) {
        upgraded = super::upgrade::upgrade(blob)?;
        &upgraded[..]
    } else {
        blob
    };
    let replanned = shared::format::replan(blob).map_err(|e| anyhow!("invalid blob: {e}"))?;
    let blob = &replanned[..];
    let model = Model::from_bytes(blob).map_err(|e| anyhow!("invalid blob: {e}"))?;
    // Pass 1: the new convs, in layer order.
    let mut convs = Vec::new();
    for info in model.layers() {
        let cin = info.input.c as usize;
        let npix = info.output.h as usize * info.output.w as usize;
        match &info.desc {
            LayerDesc::Conv(c) => convs.push(recode_conv(c, cin, npix, encoding)?),
            LayerDesc::Fire(f) => {
                // Every conv of a fire keeps its input's spatial size.
                let s = f.squeeze.out_channels as usize;
                convs.push(recode_conv(&f.squeeze, cin, npix, encoding)?);
                convs.push(recode_conv(&f.expand1, s, npix, encoding)?);
                convs.push(recode_conv(&f.expand3, s, npix, encoding)?);
                if let Bypass::Complex { conv, .. } = &f.bypass {
                    convs.push(recode_conv(conv, cin, npix, encoding)?);
                }
            }
            _ => {}
        }
    }
    // Pass 2: the layer list borrowing them.
    let mut next = convs.iter();
    let mut take = || next.next().map(|c| c.desc()).ok_or(anyhow!("conv count"));
    let mut layers = Vec::new();
    for info in model.layers() {
        layers.push(match info.desc {
            LayerDesc::Conv(_) => LayerDesc::Conv(take()?),
            LayerDesc::Fire(f) => LayerDesc::Fire(FireDesc {
                squeeze: take()?,
                expand1: take()?,
                expand3: take()?,
                bypass: match f.bypass {
                    Bypass::Complex { add, out_quant, .. } => Bypass::Complex {
                        conv: take()?,
                        add,
                        out_quant,
                    },
                    other => other,
                },
            }),
            other => other,
        });
    }
    let desc = ModelDesc {
        model_id: model.model_id(),
        input: model.input_dims(),
        input_quant: model.input_quant(),
        num_classes: model.num_classes() as u16,
        layers: &layers,
    };
    let out = shared::format::encode(&desc).map_err(|e| anyhow!("encoder refused: {e}"))?;
    if super::blob::decoded_weights(&out)? != super::blob::decoded_weights(blob)? {
        bail!("internal error: the re-encoded weights differ");
    }
    {
        let mut a = crate::link::host_reference(blob)?;
        let mut b = crate::link::host_reference(&out)?;
        for (i, px) in check.into_iter().enumerate() {
            if a(px) != b(px) {
                bail!("internal error: image {i} gives other logits after re-encoding");
            }
        }
    }
    Ok(out)
}
