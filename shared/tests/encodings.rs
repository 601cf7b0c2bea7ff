//! Every weight encoding round-trips through the encoder helpers and `RowDecoder`.

use proptest::prelude::*;
use shared::encode::{OwnedWeights, SparseSource, huffman_lengths};
use shared::weights::{Huffman, RowDecoder};

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
        prop_assert_eq!(decode_all(&OwnedWeights::huff_codebook(&centroids, &idx, cout, k).unwrap(), cout, k), cb_dense);
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
