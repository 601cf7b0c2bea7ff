//! The soak: frames with some corrupted at random (seeded); good frames must be answered right,
//! bad ones refused, and nothing may hang.

use anyhow::{Result, ensure};
use shared::protocol::{ErrorCode, Request};

use super::serial::{DeviceLink, Reply, encode_request};

/// What [`soak`] saw. A clean run has `hangs == 0`, `wrong == 0`, `accepted_bad == 0`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoakReport {
    /// Frames sent.
    pub frames: usize,
    /// Good frames answered with the reference result.
    pub good_ok: usize,
    /// Bad frames answered with an error.
    pub bad_refused: usize,
    /// Bad frames by error code.
    pub refusals: Vec<(ErrorCode, usize)>,
    /// Good frames answered wrongly (other logits, an error, ...).
    pub wrong: usize,
    /// Bad frames answered with a result.
    pub accepted_bad: usize,
    /// Frames with no reply within the timeout.
    pub hangs: usize,
    /// First problem seen, for the log.
    pub first_problem: Option<String>,
}

impl SoakReport {
    /// True when every good frame was answered correctly and every bad one refused.
    pub fn passed(&self) -> bool {
        self.hangs == 0
            && self.wrong == 0
            && self.accepted_bad == 0
            && self.good_ok + self.bad_refused == self.frames
    }
}

/// SplitMix64: a tiny deterministic generator for the soak schedule.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Damages a frame (delimiter at the end) so that it stays one frame: flips bits of one body
/// byte without making it `0x00`, or cuts the body short. Returns the bad frame.
pub fn corrupt_frame(frame: &[u8], rng: &mut SplitMix) -> Vec<u8> {
    let body = &frame[..frame.len() - 1];
    let mut bad = body.to_vec();
    if rng.below(2) == 0 {
        let at = rng.below(bad.len());
        let mut flip = (rng.below(255) + 1) as u8;
        if bad[at] ^ flip == 0 {
            flip ^= 0x80; // never forge a delimiter
        }
        bad[at] ^= flip;
    } else {
        bad.truncate(rng.below(bad.len().max(1)));
        if bad.is_empty() {
            bad.push(0x01); // an empty frame is skipped, not answered: keep one byte
        }
    }
    bad.push(0);
    bad
}

/// Sends `frames` classify frames cycling through `images`, corrupting each with probability
/// `corrupt_per_mille / 1000` (seeded), and checks every reply: good frames must match
/// `reference`, bad frames must be refused, nothing may time out. After a timeout the link is
/// resynchronised with a lone delimiter and the run goes on.
pub fn soak(
    link: &mut DeviceLink,
    images: &[&[u8]],
    frames: usize,
    corrupt_per_mille: u32,
    seed: u64,
    mut reference: impl FnMut(&[u8]) -> Vec<i8>,
    mut progress: impl FnMut(usize),
) -> Result<SoakReport> {
    ensure!(!images.is_empty(), "soak needs at least one image");
    let mut rng = SplitMix(seed);
    let mut report = SoakReport::default();
    let expected: Vec<Vec<i8>> = images.iter().map(|p| reference(p)).collect();
    let note = |report: &mut SoakReport, text: String| {
        report.first_problem.get_or_insert(text);
    };
    for i in 0..frames {
        let k = i % images.len();
        let seq = i as u16;
        let frame = encode_request(&Request::Classify {
            seq,
            pixels: images[k],
        })?;
        let bad = rng.below(1000) < corrupt_per_mille as usize;
        let bytes = if bad {
            corrupt_frame(&frame, &mut rng)
        } else {
            frame
        };
        report.frames += 1;
        match link.exchange_raw(&bytes) {
            Err(e) => {
                report.hangs += 1;
                note(&mut report, format!("frame {i}: {e:#}"));
                link.write_all(&[0])?;
                link.flush_input()?;
            }
            Ok(Reply::Error { code, .. }) if bad => {
                report.bad_refused += 1;
                match report.refusals.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, n)) => *n += 1,
                    None => report.refusals.push((code, 1)),
                }
            }
            Ok(Reply::Result(r)) if !bad && r.seq == seq && r.logits == expected[k] => {
                report.good_ok += 1
            }
            Ok(reply) if bad => {
                report.accepted_bad += 1;
                note(
                    &mut report,
                    format!("frame {i} (corrupted) was answered with {reply:?}"),
                );
            }
            Ok(reply) => {
                report.wrong += 1;
                note(
                    &mut report,
                    format!("frame {i} (image {k}) was answered with {reply:?}"),
                );
            }
        }
        progress(i + 1);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::protocol;

    #[test]
    fn corrupted_frames_stay_one_frame_and_are_refused() {
        let pixels: Vec<u8> = (0..784).map(|i| (i * 7) as u8).collect();
        let frame = encode_request(&Request::Classify {
            seq: 9,
            pixels: &pixels,
        })
        .unwrap();
        let mut rng = SplitMix(3);
        for _ in 0..2000 {
            let mut bad = corrupt_frame(&frame, &mut rng);
            assert_eq!(bad.pop(), Some(0), "ends with the delimiter");
            assert!(
                !bad.is_empty() && !bad.contains(&0),
                "stays exactly one non-empty frame"
            );
            assert!(protocol::decode_request(&mut bad).is_err(), "is refused");
        }
    }

    #[test]
    fn split_mix_is_deterministic_and_bounded() {
        let (mut a, mut b) = (SplitMix(11), SplitMix(11));
        for _ in 0..100 {
            let x = a.below(7);
            assert_eq!(x, b.below(7));
            assert!(x < 7);
        }
    }

    #[test]
    fn soak_report_passes_only_when_clean() {
        let clean = SoakReport {
            frames: 3,
            good_ok: 2,
            bad_refused: 1,
            ..SoakReport::default()
        };
        assert!(clean.passed());
        assert!(
            !SoakReport {
                hangs: 1,
                ..clean.clone()
            }
            .passed()
        );
        assert!(
            !SoakReport {
                good_ok: 1,
                ..clean
            }
            .passed()
        );
    }
}
