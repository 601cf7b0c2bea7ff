//! What a build carries: the weight decoders, layer kinds and optional kernels compiled in.
//!
//! A host build carries everything ([`Everything`]). A firmware image embeds one blob, so its
//! build script lists what that blob uses ([`Used::of`]) and writes it out as a [`Caps`] type
//! ([`Used::rust_impl`]); the kernels, decoders and validation are monomorphised over it
//! ([`Capped`]), so the flash holds only the code the blob needs. A blob that needs something
//! the build left out is refused at boot with [`Error::NotBuiltIn`] (see
//! `Model::from_bytes_for`), never run on a decoder that is not there.

use core::marker::PhantomData;

use crate::format::{Bypass, ConvDesc, LayerDesc};
use crate::kernels::frame::{DotKernel, SparseBlock};
use crate::model::Model;
use crate::quant::Requant;
use crate::weights::WeightsDesc;

/// Compile-time switches of a build: `false` leaves the code out.
pub trait Caps {
    /// Dense int8 weights.
    const DENSE: bool = true;
    /// Packed codebook indices.
    const CODEBOOK: bool = true;
    /// Sparse `(gap, value)` rows.
    const SPARSE: bool = true;
    /// Huffman-coded sparse rows.
    const HUFF_SPARSE: bool = true;
    /// Huffman-coded codebook indices.
    const HUFF_CODEBOOK: bool = true;
    /// Average pool layers.
    const AVG_POOL: bool = true;
    /// Global average pool layers.
    const GLOBAL_AVG_POOL: bool = true;
    /// Fire modules with a bypass add.
    const BYPASS: bool = true;
    /// Max pools over a channel count that is not a multiple of 4 (the portable kernel).
    const MAXPOOL_ANY_CHANNELS: bool = true;
    /// The Cortex-M4 1-channel 3x3 stem multiplying every weight.
    const STEM_DENSE: bool = true;
    /// The Cortex-M4 1-channel 3x3 stem skipping zero weights.
    const STEM_SPARSE: bool = true;

    /// Whether this build decodes `w`.
    fn decodes(w: &WeightsDesc<'_>) -> bool {
        match w {
            WeightsDesc::Dense { .. } => Self::DENSE,
            WeightsDesc::Codebook { .. } => Self::CODEBOOK,
            WeightsDesc::Sparse { .. } => Self::SPARSE,
            WeightsDesc::HuffSparse { .. } => Self::HUFF_SPARSE,
            WeightsDesc::HuffCodebook { .. } => Self::HUFF_CODEBOOK,
        }
    }
}

/// Every decoder, layer kind and kernel: the host build and the default.
#[derive(Debug, Clone, Copy)]
pub struct Everything;

impl Caps for Everything {}

/// What one model uses, switch by switch (the [`Caps`] constants it needs `true`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)] // one field per `Caps` constant, same meaning
pub struct Used {
    pub dense: bool,
    pub codebook: bool,
    pub sparse: bool,
    pub huff_sparse: bool,
    pub huff_codebook: bool,
    pub avg_pool: bool,
    pub global_avg_pool: bool,
    pub bypass: bool,
    pub maxpool_any_channels: bool,
    pub stem_dense: bool,
    pub stem_sparse: bool,
}

impl Used {
    /// The switches of `C`.
    pub fn of_caps<C: Caps>() -> Self {
        Used {
            dense: C::DENSE,
            codebook: C::CODEBOOK,
            sparse: C::SPARSE,
            huff_sparse: C::HUFF_SPARSE,
            huff_codebook: C::HUFF_CODEBOOK,
            avg_pool: C::AVG_POOL,
            global_avg_pool: C::GLOBAL_AVG_POOL,
            bypass: C::BYPASS,
            maxpool_any_channels: C::MAXPOOL_ANY_CHANNELS,
            stem_dense: C::STEM_DENSE,
            stem_sparse: C::STEM_SPARSE,
        }
    }

    /// Each switch with its name, in `Caps` order.
    pub fn switches(&self) -> [(&'static str, bool); 11] {
        [
            ("DENSE", self.dense),
            ("CODEBOOK", self.codebook),
            ("SPARSE", self.sparse),
            ("HUFF_SPARSE", self.huff_sparse),
            ("HUFF_CODEBOOK", self.huff_codebook),
            ("AVG_POOL", self.avg_pool),
            ("GLOBAL_AVG_POOL", self.global_avg_pool),
            ("BYPASS", self.bypass),
            ("MAXPOOL_ANY_CHANNELS", self.maxpool_any_channels),
            ("STEM_DENSE", self.stem_dense),
            ("STEM_SPARSE", self.stem_sparse),
        ]
    }

    /// Whether every switch `self` needs is on in `have`.
    pub fn within(&self, have: &Used) -> bool {
        self.switches()
            .iter()
            .zip(have.switches())
            .all(|(&(_, need), (_, on))| on || !need)
    }

    /// What `model` uses. Reads the description only (no weight row is decoded), so it may
    /// run before the weights are checked.
    pub fn of(model: &Model<'_>) -> Self {
        let mut used = Used::default();
        for l in model.layers() {
            for (conv, in_channels) in l.convs() {
                used.conv(&conv, in_channels);
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

    fn conv(&mut self, c: &ConvDesc<'_>, in_channels: u16) {
        match c.weights {
            WeightsDesc::Dense { .. } => self.dense = true,
            WeightsDesc::Codebook { .. } => self.codebook = true,
            WeightsDesc::Sparse { .. } => self.sparse = true,
            WeightsDesc::HuffSparse { .. } => self.huff_sparse = true,
            WeightsDesc::HuffCodebook { .. } => self.huff_codebook = true,
        }
        if in_channels == 1 && c.kernel == [3, 3] {
            let cout = c.out_channels as usize;
            let entries = crate::weights::stored_entries(&c.weights, 0, cout);
            if entries.is_some_and(|e| crate::kernels::sparse_stem_pays(e, cout)) {
                self.stem_sparse = true;
            } else {
                self.stem_dense = true;
            }
        }
    }

    /// Rust source of a unit struct `name` implementing [`Caps`] with exactly these switches
    /// (the firmware build script includes it).
    #[cfg(feature = "std")]
    pub fn rust_impl(&self, name: &str) -> std::string::String {
        use core::fmt::Write;
        let mut s = std::format!(
            "/// What the embedded blob uses (generated by build.rs from the blob).\n\
             #[derive(Debug, Clone, Copy)]\npub struct {name};\n\n\
             impl shared::caps::Caps for {name} {{\n"
        );
        for (switch, on) in self.switches() {
            let _ = writeln!(s, "    const {switch}: bool = {on};");
        }
        s.push_str("}\n");
        s
    }
}

/// The kernel `K` with the switches `C`: what the firmware runs (`run_with::<Capped<BestDot,
/// BlobCaps>>`). Every method is `K`'s.
#[derive(Debug, Clone, Copy)]
pub struct Capped<K, C>(PhantomData<(K, C)>);

impl<K: DotKernel, C: Caps> DotKernel for Capped<K, C> {
    const CONV: crate::kernels::ConvIsa = K::CONV;
    type Caps = C;

    #[inline(always)]
    fn dot_block(acts: &[u32], wts: &[u32], kq: usize, np: usize, beff: &[i32], acc: &mut [i32]) {
        K::dot_block(acts, wts, kq, np, beff, acc)
    }
    #[inline(always)]
    fn dot_sparse_block(acts: &[u32], block: &SparseBlock<'_>, acc: &mut [i32]) {
        K::dot_sparse_block(acts, block, acc)
    }
    #[inline(always)]
    fn dot_row(acts: &[u32], row: &[i8], k: usize) -> i32 {
        K::dot_row(acts, row, k)
    }
    #[inline(always)]
    fn requant_row(acc: &[i32], scaled: &[i32], rq: &Requant, out: &mut [i8]) {
        K::requant_row(acc, scaled, rq, out)
    }
    #[inline(always)]
    fn pack_acts(row: &[i8], k: usize, slot: usize, zp: i8, dst: &mut [u32]) {
        K::pack_acts(row, k, slot, zp, dst)
    }
    #[inline(always)]
    fn pack_acts_rows(
        src: &[i8],
        stride: usize,
        len: usize,
        rows: usize,
        slot: usize,
        zp: i8,
        dst: &mut [u32],
    ) {
        K::pack_acts_rows(src, stride, len, rows, slot, zp, dst)
    }
    #[inline(always)]
    fn pack_nibbles(idx: &[u8], t16: &[u16; 256], k: usize, slot: usize, dst: &mut [u32]) {
        K::pack_nibbles(idx, t16, k, slot, dst)
    }
    #[inline(always)]
    fn pack_group_pair(a: &[i8], b: &[i8], k: usize, half: usize, dst: &mut [u32]) {
        K::pack_group_pair(a, b, k, half, dst)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec;

    use super::*;
    use crate::Error;
    use crate::kernels::PortableDot;
    use crate::run::run_fused_with;
    use crate::testkit::example::{ENCS, Enc};
    use crate::testkit::squeezenet;

    /// A build for the SqueezeNet-shaped test network with sparse codebook rows.
    #[derive(Debug)]
    struct SparseCodebookNet;

    impl Caps for SparseCodebookNet {
        const DENSE: bool = false;
        const CODEBOOK: bool = false;
        const HUFF_SPARSE: bool = false;
        const HUFF_CODEBOOK: bool = false;
        const AVG_POOL: bool = false;
        const BYPASS: bool = false;
        const MAXPOOL_ANY_CHANNELS: bool = false;
    }

    fn logits<K: DotKernel>(model: &Model<'_>) -> vec::Vec<i8> {
        let input: vec::Vec<i8> = (0..model.input_len()).map(|i| (i * 37 % 251) as i8).collect();
        let mut arena = vec![0u8; model.arena_len()];
        let mut out = vec![0i8; model.num_classes()];
        run_fused_with::<K>(model, &input, &mut arena, &mut out);
        out
    }

    #[test]
    fn each_encoding_is_found_and_nothing_else() {
        let names = ["DENSE", "CODEBOOK", "SPARSE", "SPARSE", "HUFF_SPARSE", "HUFF_SPARSE", "HUFF_CODEBOOK"];
        for (enc, name) in ENCS.iter().zip(names) {
            let blob = squeezenet::blob(3, 10, *enc);
            let used = Used::of(&Model::from_bytes(&blob).unwrap());
            let on: vec::Vec<_> = used.switches().iter().filter(|s| s.1).map(|s| s.0).collect();
            assert!(on.contains(&name) && on.contains(&"GLOBAL_AVG_POOL"), "{enc:?}: {on:?}");
            let encodings = ["DENSE", "CODEBOOK", "SPARSE", "HUFF_SPARSE", "HUFF_CODEBOOK"];
            assert_eq!(on.iter().filter(|s| encodings.contains(s)).count(), 1, "{enc:?}: {on:?}");
        }
    }

    #[test]
    fn a_build_with_fewer_switches_runs_its_blob_bit_for_bit() {
        let blob = squeezenet::blob(3, 10, Enc::SparseCodebook);
        let everything = Model::from_bytes(&blob).unwrap();
        assert!(Used::of(&everything).within(&Used::of_caps::<SparseCodebookNet>()));
        let narrow = Model::from_bytes_for::<SparseCodebookNet>(&blob).unwrap();
        assert_eq!(
            logits::<Capped<PortableDot, SparseCodebookNet>>(&narrow),
            logits::<PortableDot>(&everything)
        );
    }

    #[test]
    fn a_blob_needing_more_is_refused() {
        for enc in [Enc::Dense, Enc::Codebook, Enc::HuffSparseRaw, Enc::HuffCodebook] {
            let blob = squeezenet::blob(3, 10, enc);
            assert_eq!(
                Model::from_bytes_for::<SparseCodebookNet>(&blob).err(),
                Some(Error::NotBuiltIn),
                "{enc:?}"
            );
        }
        // The example network has average pools and bypass adds.
        let blob = crate::testkit::example::blob(5);
        let used = Used::of(&Model::from_bytes(&blob).unwrap());
        assert!(used.avg_pool && used.bypass);
        assert_eq!(
            Model::from_bytes_for::<SparseCodebookNet>(&blob).err(),
            Some(Error::NotBuiltIn)
        );
    }

    #[test]
    fn the_generated_impl_names_every_switch() {
        let used = Used {
            sparse: true,
            stem_sparse: true,
            ..Used::default()
        };
        let src = used.rust_impl("BlobCaps");
        assert!(src.contains("impl shared::caps::Caps for BlobCaps {"));
        for (name, on) in used.switches() {
            assert!(src.contains(&std::format!("    const {name}: bool = {on};\n")), "{name}");
        }
    }
}
