//! Every weight encoding round-trips through the encoder helpers and `RowDecoder`.

use proptest::prelude::*;
use shared::encode::{OwnedWeights, SparseSource, huffman_lengths};
use shared::format::WeightsDesc;
use shared::weights::{Huffman, RowDecoder, RowIndex};

fn decode_all(w: &OwnedWeights, cout: usize, k: usize) -> Vec<i8> {
    let d = RowDecoder::new(w.desc(), k).unwrap();
    let mut out = vec![0x55i8; cout * k];
    for r in 0..cout {
        d.check_row(r).unwrap();
        d.decode_row(r, &mut out[r * k..(r + 1) * k]).unwrap();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn roundtrip(cout in 1usize..9, k in 1usize..80, density in 0u32..101, bits in 2u8..9, gap_bits in 1u8..9, max_gap in 1u32..40, seed in any::<u64>()) {
        let mut rng = shared::testkit::Rng(seed | 1);
        let mut next = move || rng.next_u32();
        let ncent = 1usize << bits;
        let centroids: Vec<i8> = (0..ncent).map(|i| if i == 0 { 0 } else { (next() % 255) as i8 | 1 }).collect();
        let idx: Vec<u8> = (0..cout * k).map(|_| if next() % 100 < density { (next() as usize % ncent) as u8 } else { 0 }).collect();
        let cb_dense: Vec<i8> = idx.iter().map(|&i| centroids[i as usize]).collect();
        let raw: Vec<i8> = (0..cout * k).map(|_| if next() % 100 < density { next() as i8 } else { 0 }).collect();
        let cb = SparseSource::Codebook { centroids: &centroids, bits, indices: &idx };
        prop_assert_eq!(decode_all(&OwnedWeights::dense(&raw), cout, k), raw.clone());
        prop_assert_eq!(decode_all(&OwnedWeights::codebook(&centroids, bits, &idx).unwrap(), cout, k), cb_dense.clone());
        prop_assert_eq!(decode_all(&OwnedWeights::sparse(SparseSource::Raw(&raw), cout, k, gap_bits).unwrap(), cout, k), raw.clone());
        prop_assert_eq!(decode_all(&OwnedWeights::sparse(cb, cout, k, gap_bits).unwrap(), cout, k), cb_dense.clone());
        prop_assert_eq!(decode_all(&OwnedWeights::huff_sparse(SparseSource::Raw(&raw), cout, k, max_gap).unwrap(), cout, k), raw.clone());
        prop_assert_eq!(decode_all(&OwnedWeights::huff_sparse(cb, cout, k, max_gap).unwrap(), cout, k), cb_dense.clone());
        prop_assert_eq!(decode_all(&OwnedWeights::huff_codebook(&centroids, &idx, cout, k).unwrap(), cout, k), cb_dense.clone());
        // Huffman rows with their bit offsets stored, as older blobs have them.
        let stored = |w: OwnedWeights| w.with_row_offsets(cout, k).unwrap();
        let hs = stored(OwnedWeights::huff_sparse(cb, cout, k, max_gap).unwrap());
        let offsets_stored = matches!(hs.desc(), WeightsDesc::HuffSparse { row_bits, .. } if row_bits.len() == 4 * (cout + 1));
        prop_assert!(offsets_stored);
        prop_assert_eq!(decode_all(&hs, cout, k), cb_dense.clone());
        prop_assert_eq!(decode_all(&stored(OwnedWeights::huff_codebook(&centroids, &idx, cout, k).unwrap()), cout, k), cb_dense);
    }

    /// Rows stored without offsets decode in any order (the cursor starts again or walks
    /// ahead), the same as in order.
    #[test]
    fn huffman_rows_decode_in_any_order(cout in 1usize..9, k in 1usize..40, seed in any::<u64>(), order in proptest::collection::vec(0usize..9, 1..20)) {
        let mut rng = shared::testkit::Rng(seed | 1);
        let raw: Vec<i8> = (0..cout * k).map(|_| if rng.next_u32().is_multiple_of(3) { rng.next_u32() as i8 } else { 0 }).collect();
        for w in [
            OwnedWeights::huff_sparse(SparseSource::Raw(&raw), cout, k, 7).unwrap(),
            OwnedWeights::huff_codebook(&[0, 1, -1, 5], &raw.iter().map(|&v| (v as u8) % 4).collect::<Vec<_>>(), cout, k).unwrap(),
        ] {
            let whole = decode_all(&w, cout, k);
            let d = RowDecoder::new(w.desc(), k).unwrap();
            let mut row = vec![0i8; k];
            for &r in &order {
                let r = r % cout;
                d.decode_row(r, &mut row).unwrap();
                prop_assert_eq!(&row[..], &whole[r * k..(r + 1) * k]);
            }
        }
    }

    #[test]
    fn huffman_lengths_are_valid(freqs in proptest::collection::vec(0u64..1_000_000, 1..256)) {
        prop_assume!(freqs.iter().any(|&f| f > 0));
        let l = huffman_lengths(&freqs);
        prop_assert!(l.iter().all(|&x| x <= 15));
        for (f, x) in freqs.iter().zip(&l) {
            prop_assert_eq!(*f > 0, *x > 0);
        }
        prop_assert!(Huffman::new(&l).is_ok());
    }
}

#[test]
fn skewed_frequencies_are_length_limited() {
    // Fibonacci frequencies would need > 15 bits unlimited.
    let mut f = vec![1u64, 1];
    while f.len() < 40 {
        let n = f[f.len() - 1] + f[f.len() - 2];
        f.push(n);
    }
    let l = huffman_lengths(&f);
    assert!(l.iter().all(|&x| (1..=15).contains(&x)));
    assert!(Huffman::new(&l).is_ok());
}

#[test]
fn oversubscribed_huffman_is_rejected() {
    assert!(Huffman::new(&[1, 1, 1]).is_err());
    assert!(Huffman::new(&[0, 0]).is_err());
    assert!(Huffman::new(&[16]).is_err());
}

fn row_index_of(w: &OwnedWeights) -> RowIndex<'_> {
    match w.desc() {
        WeightsDesc::Sparse { row_ptr, .. } | WeightsDesc::HuffSparse { row_ptr, .. } => {
            RowIndex::of(row_ptr)
        }
        _ => panic!("not a sparse encoding"),
    }
}

/// Rows of at most 255 entries are indexed by one count byte each, longer ones by u32 offsets;
/// both decode every row, asked for in any order (the counts' cursor also goes backwards).
#[test]
fn row_index_forms_decode_alike() {
    let (cout, k) = (5, 600);
    let weights = |dense_row: Option<usize>| -> Vec<i8> {
        (0..cout * k)
            .map(|i| match (i / k, i % 7) {
                (r, _) if Some(r) == dense_row => (i % 251) as i8 | 1,
                (_, 0) => (i % 13) as i8 - 6,
                _ => 0,
            })
            .collect()
    };
    for (dense_row, offsets) in [(None, false), (Some(2), true)] {
        let raw = weights(dense_row);
        for w in [
            OwnedWeights::sparse(SparseSource::Raw(&raw), cout, k, 4).unwrap(),
            OwnedWeights::huff_sparse(SparseSource::Raw(&raw), cout, k, 15).unwrap(),
        ] {
            let index = row_index_of(&w);
            assert_eq!(matches!(index, RowIndex::Offsets(_)), offsets, "{index:?}");
            let d = RowDecoder::new(w.desc(), k).unwrap();
            let mut row = vec![0i8; k];
            for r in [4, 0, 3, 1, 2, 2, 0] {
                d.decode_row(r, &mut row).unwrap();
                assert_eq!(row, raw[r * k..(r + 1) * k], "row {r}");
                let stored = d.stored_entries(r, r + 1).unwrap();
                let nonzero = row.iter().filter(|&&v| v != 0).count();
                assert!(
                    stored >= nonzero,
                    "row {r}: {stored} stored, {nonzero} nonzero"
                );
            }
        }
    }
}
