//! What a blob holds, read back: every conv's weights decoded to dense int8, and where the
//! blob's bytes go (weights, row offsets, per-channel parameters, the rest).

use anyhow::Result;
use serde::{Deserialize, Serialize};
use shared::weights::{Values, WeightsDesc};

/// Where one conv's stored weight bytes go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeightBytes {
    /// Weight values: dense bytes, packed indices, Huffman streams, sparse entries, codebooks,
    /// code-length tables.
    pub values: usize,
    /// Row indexes of sparse and Huffman encodings.
    pub rows: usize,
    /// The bit widths stored beside them (codebook index bits, gap bits), a byte each.
    pub widths: usize,
}

impl WeightBytes {
    /// All the bytes the encoding stores.
    pub fn total(&self) -> usize {
        self.values + self.rows + self.widths
    }
}

/// The bytes one conv's weight encoding stores, by kind.
pub fn weight_bytes(w: &WeightsDesc<'_>) -> WeightBytes {
    let codebook = |v: &Values<'_>| match v {
        Values::Raw => (0, 0),
        Values::Codebook { centroids, .. } => (centroids.len(), 1),
    };
    match w {
        WeightsDesc::Dense { data } => WeightBytes {
            values: data.len(),
            ..WeightBytes::default()
        },
        WeightsDesc::Codebook {
            centroids, indices, ..
        } => WeightBytes {
            values: centroids.len() + indices.len(),
            rows: 0,
            widths: 1,
        },
        WeightsDesc::Sparse {
            values,
            row_ptr,
            entries,
            ..
        } => {
            let (c, bits) = codebook(values);
            WeightBytes {
                values: c + entries.len(),
                rows: row_ptr.len(),
                widths: bits + 1,
            }
        }
        WeightsDesc::HuffSparse {
            values,
            gap_lengths,
            value_lengths,
            row_ptr,
            row_bits,
            stream,
        } => {
            let (c, bits) = codebook(values);
            WeightBytes {
                values: c + gap_lengths.len() + value_lengths.len() + stream.len(),
                rows: row_ptr.len() + row_bits.len(),
                widths: bits,
            }
        }
        WeightsDesc::HuffCodebook {
            centroids,
            lengths,
            row_bits,
            stream,
        } => WeightBytes {
            values: centroids.len() + lengths.len() + stream.len(),
            rows: row_bits.len(),
            widths: 0,
        },
    }
}

/// Where a blob's bytes go.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BlobBreakdown {
    /// Weight values: dense bytes, packed indices, Huffman streams, sparse entries, codebooks,
    /// code-length tables.
    pub weights: usize,
    /// Row indexes of sparse and Huffman encodings (u32 per output channel).
    pub row_offsets: usize,
    /// Per output channel: i16 bias and u16 multiplier.
    pub per_channel: usize,
    /// Header, layer graph, quantisation parameters.
    pub other: usize,
}

impl BlobBreakdown {
    /// One sentence for reports: where the bytes go, and the compression of the `weights`
    /// weights against float32, without and with the row indexes that locate sparse rows.
    pub fn describe(&self, weights: usize) -> String {
        let f32_bytes = (4 * weights) as f64;
        let with_rows = self.weights + self.row_offsets;
        format!(
            "weights (values, indices, codes, codebooks) {} ({:.1}x below the float32 weights, \
             {:.2} bits per weight), row offsets {} (with them {}: {:.1}x), per-channel bias / \
             scale / multiplier {}, header and graph {}",
            self.weights,
            f32_bytes / self.weights.max(1) as f64,
            8.0 * self.weights as f64 / weights.max(1) as f64,
            self.row_offsets,
            with_rows,
            f32_bytes / with_rows.max(1) as f64,
            self.per_channel,
            self.other
        )
    }
}

/// Splits a blob's bytes into weights, row offsets, per-channel parameters and the rest.
pub fn blob_breakdown(blob: &[u8]) -> Result<BlobBreakdown> {
    use shared::format::{Bypass, ConvDesc, LayerDesc};
    let model = shared::Model::from_bytes(blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut b = BlobBreakdown::default();
    let mut conv = |c: &ConvDesc<'_>| {
        b.per_channel += c.bias.len() + c.multipliers.len();
        let w = weight_bytes(&c.weights);
        b.weights += w.values;
        b.row_offsets += w.rows;
    };
    for info in model.layers() {
        match &info.desc {
            LayerDesc::Conv(c) => conv(c),
            LayerDesc::Fire(f) => {
                conv(&f.squeeze);
                conv(&f.expand1);
                conv(&f.expand3);
                if let Bypass::Complex { conv: c, .. } = &f.bypass {
                    conv(c);
                }
            }
            _ => {}
        }
    }
    b.other = blob.len() - b.weights - b.row_offsets - b.per_channel;
    Ok(b)
}

/// Every conv's weights as stored in a blob, decoded to dense OHWI int8.
pub fn decoded_weights(blob: &[u8]) -> Result<Vec<Vec<i8>>> {
    let model = shared::Model::from_bytes(blob).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::new();
    let mut decode = |c: &shared::format::ConvDesc<'_>, cin: usize| -> Result<()> {
        let n = c.out_channels as usize * c.kernel[0] as usize * c.kernel[1] as usize * cin;
        let mut w = vec![0i8; n];
        c.decode_weights(cin, &mut w)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push(w);
        Ok(())
    };
    for info in model.layers() {
        let cin = info.input.c as usize;
        match &info.desc {
            shared::format::LayerDesc::Conv(c) => decode(c, cin)?,
            shared::format::LayerDesc::Fire(f) => {
                decode(&f.squeeze, cin)?;
                decode(&f.expand1, f.squeeze.out_channels as usize)?;
                decode(&f.expand3, f.squeeze.out_channels as usize)?;
                if let shared::format::Bypass::Complex { conv, .. } = &f.bypass {
                    decode(conv, cin)?;
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
