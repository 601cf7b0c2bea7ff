//! Deep Compression's size stages on int8 weights: magnitude pruning per layer, k-means weight
//! sharing per layer (linear initialisation), and the choice of storage (codebook, sparse,
//! Huffman) that makes each layer smallest.
//!
//! These are post-training stages (no fine-tuning yet): they work on the int8 weights of one
//! conv at a time, in quantisation steps, so a shared int8 codebook stays exact under the
//! per-channel weight scales.

use anyhow::{Result, anyhow};
use shared::encode::{OwnedWeights, SparseSource};

use super::blob::weight_bytes;
use super::kmeans::kmeans_i8;

/// Settings of the size stages.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SharingConfig {
    /// Fraction of each layer's weights (smallest magnitudes) set to zero.
    pub prune: f64,
    /// Codebook index bits per layer (2..=8): at most `2^bits` shared values.
    pub bits: u8,
    /// Lloyd iterations of k-means.
    pub iterations: usize,
    /// Store each conv the way the device runs fastest ([`fastest_encoding`]: packed codebook
    /// indices, or byte-entry sparse rows where zero skipping wins) instead of the smallest way.
    pub fast_decode: bool,
}

impl Default for SharingConfig {
    fn default() -> Self {
        Self {
            prune: 0.0,
            bits: 4,
            iterations: 30,
            fast_decode: false,
        }
    }
}

/// Zeroes the `fraction` smallest-magnitude weights (ties broken by position, deterministic).
pub fn prune(w: &[i8], fraction: f64) -> Vec<i8> {
    let n = ((w.len() as f64) * fraction.clamp(0.0, 1.0)).floor() as usize;
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by_key(|&i| ((w[i] as i32).abs(), i));
    let mut out = w.to_vec();
    for &i in &order[..n] {
        out[i] = 0;
    }
    out
}

/// Each weight replaced by its nearest centroid (ties: the smaller centroid); returns the
/// indices and the shared weights.
pub fn assign(w: &[i8], centroids: &[i8]) -> (Vec<u8>, Vec<i8>) {
    let idx: Vec<u8> = w
        .iter()
        .map(|&x| {
            (0..centroids.len())
                .min_by_key(|&i| (centroids[i] as i32 - x as i32).abs())
                .unwrap_or(0) as u8
        })
        .collect();
    let shared = idx.iter().map(|&i| centroids[i as usize]).collect();
    (idx, shared)
}

/// The int8 weights after pruning and weight sharing, with their codebook.
pub fn share(w: &[i8], cfg: &SharingConfig) -> (Vec<i8>, Vec<u8>, Vec<i8>) {
    let pruned = prune(w, cfg.prune);
    let centroids = kmeans_i8(&pruned, 1 << cfg.bits, cfg.iterations, cfg.prune > 0.0);
    let (idx, shared) = assign(&pruned, &centroids);
    (shared, idx, centroids)
}

/// Bytes an encoding stores.
pub fn stored_bytes(w: &OwnedWeights) -> usize {
    weight_bytes(&w.desc()).total()
}

/// The encoding the device runs fastest for a conv with `npix` output pixels: packed codebook
/// indices (dense rows, the cheapest to decode), except where the kernels skip zero weights:
/// a 1-channel 3x3 stem (`stem`) sparse enough for the Cortex-M4 stem kernel
/// ([`shared::kernels::sparse_stem_pays`]), and any other conv whose byte-entry sparse rows
/// pass [`shared::kernels::sparse_rows_pay`]. Sparse rows are one byte per entry (gap in the low
/// `8 - bits` bits, codebook index above), which the zero-skipping driver reads without a bit
/// reader.
pub fn fastest_encoding(
    idx: &[u8],
    centroids: &[i8],
    bits: u8,
    cout: usize,
    k: usize,
    stem: bool,
    npix: usize,
) -> Result<OwnedWeights> {
    let e = |r: Result<OwnedWeights, shared::Error>| r.map_err(|e| anyhow!("encoder: {e}"));
    let bits = bits.max(2);
    let src = || SparseSource::Codebook {
        centroids,
        bits,
        indices: idx,
    };
    if let Some(z) = centroids.iter().position(|&c| c == 0) {
        if stem && k == 9 && bits <= 4 {
            let nonzero = idx.iter().filter(|&&i| i as usize != z).count();
            if shared::kernels::sparse_stem_pays(nonzero, cout) {
                return e(OwnedWeights::sparse(src(), cout, k, 4));
            }
        } else if !stem && bits <= 6 {
            let sparse = e(OwnedWeights::sparse(src(), cout, k, 8 - bits))?;
            let stored = shared::weights::RowDecoder::new(sparse.desc(), k)
                .ok()
                .and_then(|d| d.stored_entries(0, cout));
            if stored.is_some_and(|n| shared::kernels::sparse_rows_pay(npix, n, cout, k)) {
                return Ok(sparse);
            }
        }
    }
    e(OwnedWeights::codebook(centroids, bits, idx))
}

/// Sparse rows wherever the zero-skipping driver runs them (`shared::kernels::zero_skip_pays`):
/// byte entries (`huffman` false: the fastest), or the smallest of plain and Huffman-coded
/// sparse rows (`huffman`); else codebook rows (packed, or Huffman-coded with `huffman`).
pub fn zero_skip_encoding(
    idx: &[u8],
    centroids: &[i8],
    bits: u8,
    (cout, k, npix): (usize, usize, usize),
    huffman: bool,
) -> Result<OwnedWeights> {
    let e = |r: Result<OwnedWeights, shared::Error>| r.map_err(|e| anyhow!("encoder: {e}"));
    let bits = bits.max(2);
    let mut sparse = Vec::new();
    if centroids.contains(&0) && bits <= 6 {
        let src = || SparseSource::Codebook {
            centroids,
            bits,
            indices: idx,
        };
        sparse.push(e(OwnedWeights::sparse(src(), cout, k, 8 - bits))?);
        if huffman {
            for gap_bits in [3u8, 4, 5] {
                sparse.push(e(OwnedWeights::sparse(src(), cout, k, gap_bits))?);
            }
            for max_gap in [15u32, 31, 63, 127, 255] {
                sparse.push(e(OwnedWeights::huff_sparse(src(), cout, k, max_gap))?);
            }
        }
    }
    let taken = |w: &OwnedWeights| {
        shared::weights::RowDecoder::new(w.desc(), k)
            .ok()
            .and_then(|d| d.stored_entries(0, cout))
            .is_some_and(|n| shared::kernels::zero_skip_pays(npix, n, cout, k))
    };
    if let Some(w) = sparse.into_iter().filter(taken).min_by_key(stored_bytes) {
        return Ok(w);
    }
    if huffman {
        smallest_encoding(idx, centroids, bits, cout, k)
    } else {
        e(OwnedWeights::codebook(centroids, bits, idx))
    }
}

/// The smallest storage of shared weights: codebook, Huffman-coded codebook, and (when there
/// are zeros) sparse or Huffman-coded sparse over the codebook.
pub fn smallest_encoding(
    idx: &[u8],
    centroids: &[i8],
    bits: u8,
    cout: usize,
    k: usize,
) -> Result<OwnedWeights> {
    let e = |r: Result<OwnedWeights, shared::Error>| r.map_err(|e| anyhow!("encoder: {e}"));
    let bits = bits.max(2);
    let mut options = vec![
        e(OwnedWeights::codebook(centroids, bits, idx))?,
        e(OwnedWeights::huff_codebook(centroids, idx, cout, k))?,
    ];
    if centroids.contains(&0) {
        let src = || SparseSource::Codebook {
            centroids,
            bits,
            indices: idx,
        };
        for gap_bits in [3u8, 4, 5] {
            options.push(e(OwnedWeights::sparse(src(), cout, k, gap_bits))?);
        }
        // The longest gap one symbol codes: longer gaps take filler entries, a larger alphabet
        // takes a longer table (a byte per symbol); which pays depends on the layer's sparsity.
        for max_gap in [15u32, 31, 63, 127, 255] {
            options.push(e(OwnedWeights::huff_sparse(src(), cout, k, max_gap))?);
        }
    }
    options
        .into_iter()
        .min_by_key(stored_bytes)
        .ok_or_else(|| anyhow!("no encoding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fastest_encoding_is_sparse_where_the_kernels_skip_zeros() {
        use shared::weights::WeightsDesc;
        let centroids = [-50i8, 0, 7, 90];
        // 64 channels of `k` weights; `density` percent of them nonzero (index != 1).
        let rows = |k: usize, density: usize| -> Vec<u8> {
            (0..64 * k)
                .map(|i| {
                    if (i * 37) % 100 < density {
                        [0, 2, 3][i % 3]
                    } else {
                        1
                    }
                })
                .collect()
        };
        let kind = |k: usize, density: usize, stem: bool, npix: usize| {
            let w = fastest_encoding(&rows(k, density), &centroids, 2, 64, k, stem, npix).unwrap();
            match w.desc() {
                WeightsDesc::Sparse { .. } => "sparse",
                WeightsDesc::Codebook { .. } => "codebook",
                _ => "other",
            }
        };
        // The 1-channel stem: sparse up to 55 %.
        assert_eq!(kind(9, 40, true, 784), "sparse");
        assert_eq!(kind(9, 70, true, 784), "codebook");
        // Other convs: by density and output size (break-even lower on small maps).
        assert_eq!(kind(576, 10, false, 9), "sparse");
        assert_eq!(kind(576, 30, false, 9), "codebook");
        assert_eq!(kind(576, 30, false, 49), "sparse");
        assert_eq!(kind(576, 30, false, 196), "sparse");
        assert_eq!(kind(576, 50, false, 196), "codebook");
        // Decoding the sparse rows gives back exactly the indexed values.
        for (k, density, stem, npix) in [(9, 40, true, 784), (576, 10, false, 9)] {
            let idx = rows(k, density);
            let w = fastest_encoding(&idx, &centroids, 2, 64, k, stem, npix).unwrap();
            let dec = shared::weights::RowDecoder::new(w.desc(), k).unwrap();
            let mut row = vec![0i8; k];
            for r in 0..64 {
                dec.decode_row(r, &mut row).unwrap();
                let want: Vec<i8> = idx[k * r..k * (r + 1)]
                    .iter()
                    .map(|&i| centroids[i as usize])
                    .collect();
                assert_eq!(row, want, "k {k}, row {r}");
            }
        }
    }

    #[test]
    fn pruning_zeroes_the_smallest_magnitudes() {
        let w = [5i8, -1, 3, 0, -7, 2];
        assert_eq!(prune(&w, 0.5), vec![5, 0, 3, 0, -7, 0]);
        assert_eq!(prune(&w, 0.0), w.to_vec());
    }

    #[test]
    fn kmeans_finds_clusters_and_keeps_zero_when_pruned() {
        let mut w = vec![0i8; 30];
        w.extend(
            [-100i8, -98, -102, 50, 52, 48, 10, 11, 9]
                .iter()
                .cycle()
                .take(90),
        );
        let c = kmeans_i8(&w, 4, 50, true);
        assert_eq!(c, vec![-100, 0, 10, 50]);
        let (idx, shared) = assign(&w, &c);
        assert_eq!(shared[30], -100);
        assert!(idx.iter().all(|&i| (i as usize) < c.len()));
        // Fewer distinct values than clusters: every value is its own centroid.
        assert_eq!(kmeans_i8(&[1, 2, 3], 16, 5, false), vec![1, 2, 3]);
    }

    #[test]
    fn encodings_round_trip_and_shrink() {
        let mut w: Vec<i8> = (0..64 * 16)
            .map(|i: i32| (i * 37 % 101 - 50) as i8)
            .collect();
        let cfg = SharingConfig {
            prune: 0.6,
            bits: 3,
            iterations: 20,
            fast_decode: false,
        };
        let (shared_w, idx, c) = share(&w, &cfg);
        let enc = smallest_encoding(&idx, &c, 3, 64, 16).unwrap();
        assert!(
            stored_bytes(&enc) < w.len() / 2,
            "{} bytes",
            stored_bytes(&enc)
        );
        let d = shared::weights::RowDecoder::new(enc.desc(), 16).unwrap();
        for r in 0..64 {
            let mut row = [0i8; 16];
            d.decode_row(r, &mut row).unwrap();
            assert_eq!(row[..], shared_w[r * 16..(r + 1) * 16]);
        }
        w.clear();
    }

    #[test]
    fn very_sparse_layers_get_a_long_gap_alphabet() {
        use shared::weights::WeightsDesc;
        // 256 rows of 576 (a 64-channel 3x3 expand), 2 % nonzero: mean gap about 50.
        let (cout, k) = (256, 576);
        let centroids = [-60i8, -20, 0, 20, 60];
        let idx: Vec<u8> = (0..cout * k)
            .map(|i| {
                let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                if h.is_multiple_of(50) {
                    [0, 1, 3, 4][(h / 50 % 4) as usize]
                } else {
                    2
                }
            })
            .collect();
        let enc = smallest_encoding(&idx, &centroids, 3, cout, k).unwrap();
        let WeightsDesc::HuffSparse { gap_lengths, .. } = enc.desc() else {
            panic!("expected Huffman-coded sparse rows, got {:?}", enc.desc());
        };
        assert!(gap_lengths.len() > 32, "gap alphabet {}", gap_lengths.len());
        let short = OwnedWeights::huff_sparse(
            SparseSource::Codebook {
                centroids: &centroids,
                bits: 3,
                indices: &idx,
            },
            cout,
            k,
            31,
        )
        .unwrap();
        assert!(stored_bytes(&enc) < stored_bytes(&short));
        let d = shared::weights::RowDecoder::new(enc.desc(), k).unwrap();
        let mut row = vec![0i8; k];
        for r in 0..cout {
            d.decode_row(r, &mut row).unwrap();
            for (j, &x) in row.iter().enumerate() {
                assert_eq!(x, centroids[idx[r * k + j] as usize], "row {r} col {j}");
            }
        }
    }
}
