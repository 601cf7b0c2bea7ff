//! Cost rules: which kernel pays for which layer. The dispatcher and the exporter (which picks
//! an encoding per layer) read the same rules, so that a blob is stored the way it runs fastest.

use crate::caps::Caps;
use crate::kernels::params::{ConvParams, ROW_BLOCK, SPARSE_GROUP};
use crate::weights::RowDecoder;

/// Fewest output pixels for the zero-skipping driver at up to 50 % density. With fewer pixels
/// each entry serves too few of them to pay for its index (measured on 3x3, 7x7 and 14x14 maps:
/// `shared/BENCHMARKS.md`, "Zero skipping on small maps, by density"). Below it the driver
/// still runs rows of at most 30 % density ([`zero_skip_pays`]).
pub const ZERO_SKIP_MIN_PIXELS: usize = 16;

/// Whether the zero-skipping driver beats the packed path (which decodes each sparse row into
/// a dense one) for a conv with `npix` output pixels whose sparse rows store `stored` entries
/// of `cout * k` weights: up to one entry per two weights with at least
/// [`ZERO_SKIP_MIN_PIXELS`] pixels; below that each entry serves few pixels and the rule is
/// up to 30 %, just under the break-even of the density sweep (`shared/qemu/bench.sh`; its
/// figures in `shared/BENCHMARKS.md`).
pub fn zero_skip_pays(npix: usize, stored: usize, cout: usize, k: usize) -> bool {
    let weights = cout.saturating_mul(k);
    if npix >= ZERO_SKIP_MIN_PIXELS {
        stored.saturating_mul(2) <= weights
    } else {
        npix > 0 && stored.saturating_mul(10) <= weights.saturating_mul(3)
    }
}

/// Whether storing a conv's weights as byte-entry sparse rows (run by the zero-skipping driver)
/// costs fewer instructions than packed 4-bit codebook rows, the other fast encoding. Its
/// break-even density grows with the output pixels over which each entry's cost spreads; the
/// thresholds (20 % under 16 pixels, 33 % under 64, 40 % above) sit just below the break-evens
/// of the density sweep (`shared/qemu/bench.sh`; its figures in `shared/BENCHMARKS.md`).
/// Implies [`zero_skip_pays`].
pub fn sparse_rows_pay(npix: usize, stored: usize, cout: usize, k: usize) -> bool {
    let weights = cout.saturating_mul(k);
    let (num, den) = match npix {
        0 => return false,
        1..ZERO_SKIP_MIN_PIXELS => (1, 5),
        16..64 => (1, 3),
        _ => (2, 5),
    };
    stored.saturating_mul(den) <= weights.saturating_mul(num)
        && zero_skip_pays(npix, stored, cout, k)
}

/// Whether the Cortex-M4 stem kernel (1-channel 3x3, `cout % 8 == 0`) takes its zero-skipping
/// stream for sparse rows storing `stored` entries in all (plain or Huffman coded; other
/// encodings never do). A channel costs `3 + pairs` instructions there (`LDM`, one `SMLAD` per
/// nonzero pair of taps, `PUSH`, `LDR pc`) against 7 with dense records (`LDM`, 5 `SMLAD`,
/// `VMOV`), the requantisation being the same, so it pays below 4 nonzero pairs a channel: at
/// density `d` a channel has `4 (1 - (1 - d)^2) + d` of them on average, 4 at about 62 %.
/// Taken up to 55 %, read from the row index without decoding; `false` unless `cout % 8 == 0`.
pub fn sparse_stem_pays(stored: usize, cout: usize) -> bool {
    cout.is_multiple_of(8) && 20 * stored <= 11 * 9 * cout
}

/// Whether `conv_s8` takes the zero-skipping path for this conv with `scratch_len` bytes of
/// scratch: sparse-coded weights (plain or Huffman) sparse enough for [`zero_skip_pays`] (above
/// that the packed dense path costs less), `k < 8192`, and room for one packed pixel group, the
/// im2col of two pixels and the entries of the longest row.
pub fn zero_skip_applies<C: Caps>(
    p: &ConvParams,
    w: &RowDecoder<'_, C>,
    scratch_len: usize,
) -> bool {
    sparse_layout(p, w, scratch_len).is_some()
}

/// `(all groups packed at once, entry words available)` when the zero-skipping path applies.
pub(crate) fn sparse_layout<C: Caps>(
    p: &ConvParams,
    w: &RowDecoder<'_, C>,
    scratch_len: usize,
) -> Option<(bool, usize)> {
    let (k, cout) = (p.k(), p.output.c as usize);
    let npix = p.output.h as usize * p.output.w as usize;
    let total = w.stored_entries(0, cout)?;
    if k >= 8192 || !zero_skip_pays(npix, total, cout, k) {
        return None;
    }
    let longest = (0..cout)
        .map(|r| w.stored_entries(r, r + 1).unwrap_or(usize::MAX))
        .max()
        .unwrap_or(0);
    let cols = if p.direct() { 0 } else { 2 * k };
    let group = 8 * k;
    let fixed = 3 + cols;
    let ng = npix.div_ceil(SPARSE_GROUP);
    // Entries of one channel, padded to an even count >= 2 for the 2-entry loop.
    let min_entries = longest.saturating_add(2);
    let words = |acts: usize| scratch_len.checked_sub(fixed + acts).map(|b| b / 4);
    // Every group packed once, when that leaves room for all the entries of one full block.
    let block_entries = w.stored_entries(0, cout.min(ROW_BLOCK))? + 2 * ROW_BLOCK;
    if ng > 1
        && let Some(e) = words(group * ng)
        && e >= block_entries.max(min_entries)
    {
        return Some((true, e));
    }
    let e = words(group)?;
    (e >= min_entries).then_some((false, e))
}

#[cfg_attr(not(sqz_dsp), allow(dead_code))]
/// [`sparse_stem_pays`] for these rows; dense and codebook rows keep
/// the kernel that multiplies every weight, as in the fire layers.
pub(crate) fn sparse_stem_applies<C: Caps>(w: &RowDecoder<'_, C>, cout: usize) -> bool {
    w.stored_entries(0, cout)
        .is_some_and(|e| sparse_stem_pays(e, cout))
}
