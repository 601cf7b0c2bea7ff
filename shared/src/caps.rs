//! What a build carries: the weight decoders, layer kinds and optional kernels compiled in.
//!
//! A host build carries everything ([`Everything`]). A firmware image embeds one blob, so its
//! build script lists what that blob uses (`Model::uses`, a [`Used`]) and writes it out as a
//! [`Caps`] type ([`Used::rust_impl`]); the kernels, decoders and validation are monomorphised
//! over it (`kernels::Capped`), so the flash holds only the code the blob needs. A blob that
//! needs something the build left out is refused at boot with `Error::NotBuiltIn` (see
//! `Model::from_bytes_for`), never run on a decoder that is not there.

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
    /// The packed conv driver (`kernels::conv_packed_s8`): rows of the dense-row encodings, and
    /// sparse rows the zero-skipping driver does not take (`kernels::zero_skip_applies` with
    /// the planned scratch). A blob whose every conv the zero-skipping driver runs needs only
    /// that driver (`sqz recode --encoding zero-skip`).
    const PACKED: bool = true;
    /// Average pool layers.
    const AVG_POOL: bool = true;
    /// Global average pool layers.
    const GLOBAL_AVG_POOL: bool = true;
    /// Fire modules with a bypass add.
    const BYPASS: bool = true;
    /// Max pools over a channel count that is not a multiple of 4 (the portable kernel).
    const MAXPOOL_ANY_CHANNELS: bool = true;
    /// The Cortex-M4 1-channel 3x3 stem multiplying every weight. Optional, as is
    /// `STEM_SPARSE`: a build without it runs the stem on the general conv drivers (the same
    /// output; a blob that would use it is not refused).
    const STEM_DENSE: bool = true;
    /// The Cortex-M4 1-channel 3x3 stem skipping zero weights (optional, see `STEM_DENSE`).
    const STEM_SPARSE: bool = true;
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
    pub packed: bool,
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
            packed: C::PACKED,
            avg_pool: C::AVG_POOL,
            global_avg_pool: C::GLOBAL_AVG_POOL,
            bypass: C::BYPASS,
            maxpool_any_channels: C::MAXPOOL_ANY_CHANNELS,
            stem_dense: C::STEM_DENSE,
            stem_sparse: C::STEM_SPARSE,
        }
    }

    /// Each switch with its name, in `Caps` order.
    pub fn switches(&self) -> [(&'static str, bool); 12] {
        [
            ("DENSE", self.dense),
            ("CODEBOOK", self.codebook),
            ("SPARSE", self.sparse),
            ("HUFF_SPARSE", self.huff_sparse),
            ("HUFF_CODEBOOK", self.huff_codebook),
            ("PACKED", self.packed),
            ("AVG_POOL", self.avg_pool),
            ("GLOBAL_AVG_POOL", self.global_avg_pool),
            ("BYPASS", self.bypass),
            ("MAXPOOL_ANY_CHANNELS", self.maxpool_any_channels),
            ("STEM_DENSE", self.stem_dense),
            ("STEM_SPARSE", self.stem_sparse),
        ]
    }

    /// Whether every switch `self` needs is on in `have`. The stems are not needed: without
    /// them the general drivers run the stem.
    pub fn within(&self, have: &Used) -> bool {
        self.switches()
            .iter()
            .zip(have.switches())
            .all(|(&(name, need), (_, on))| on || !need || Self::is_optional(name))
    }

    /// Whether the switch `name` is an optional kernel rather than a decoder or layer kind.
    pub fn is_optional(name: &str) -> bool {
        name.starts_with("STEM_")
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
