//! One-dimensional k-means (Lloyd's algorithm), the one both weight-sharing paths use: the
//! post-training sharing of int8 weights ([`kmeans_i8`], on their histogram: exact and fast)
//! and the initial clusters of centroid fine-tuning ([`kmeans_f64`], on reals in int8 units).
//! Both initialise linearly between the smallest and largest value, as the Deep Compression
//! paper recommends.

/// Which of two equally near centroids a value joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ties {
    /// The smaller centroid.
    Lower,
    /// The larger centroid.
    Upper,
}

/// Lloyd's iterations over weighted 1-D `points` (`(value, weight)`, sorted by value) from the
/// sorted centroids `c`: each point joins its nearest centroid (equal distances: `ties`), each
/// centroid with points moves to their weighted mean (an empty one keeps its place). Stops
/// after `iterations`, or once no centroid moves by more than 1e-9. Returns the centroids.
pub fn lloyd_1d(points: &[(f64, f64)], mut c: Vec<f64>, iterations: usize, ties: Ties) -> Vec<f64> {
    let k = c.len();
    if k == 0 {
        return c;
    }
    for _ in 0..iterations {
        let mut sum = vec![0f64; k];
        let mut cnt = vec![0f64; k];
        let mut j = 0;
        for &(x, n) in points {
            // Centroids stay sorted, so the nearest only moves right as x grows.
            while j + 1 < k && {
                let (next, here) = ((c[j + 1] - x).abs(), (c[j] - x).abs());
                match ties {
                    Ties::Lower => next < here,
                    Ties::Upper => next <= here,
                }
            } {
                j += 1;
            }
            sum[j] += x * n;
            cnt[j] += n;
        }
        let mut moved = false;
        for i in 0..k {
            if cnt[i] > 0.0 {
                let m = sum[i] / cnt[i];
                moved |= (m - c[i]).abs() > 1e-9;
                c[i] = m;
            }
        }
        if !moved {
            break;
        }
    }
    c
}

/// k-means over int8 weight values, on their histogram; initial centroids evenly spaced from
/// the smallest to the largest value (or the values themselves when there are at most `k`).
/// A pruned layer (`keep_zero`) keeps 0 as a fixed centroid and clusters only its nonzero
/// weights. Returns the sorted, de-duplicated int8 centroids.
pub fn kmeans_i8(w: &[i8], k: usize, iterations: usize, keep_zero: bool) -> Vec<i8> {
    let mut hist = [0u64; 256];
    for &x in w {
        if !(keep_zero && x == 0) {
            hist[(x as i32 + 128) as usize] += 1;
        }
    }
    let values: Vec<(f64, f64)> = (0..256)
        .filter(|&v| hist[v] > 0)
        .map(|v| (v as f64 - 128.0, hist[v] as f64))
        .collect();
    let free = if keep_zero { k.saturating_sub(1) } else { k };
    let init: Vec<f64> = if values.is_empty() || free == 0 {
        Vec::new()
    } else if values.len() <= free {
        values.iter().map(|v| v.0).collect()
    } else {
        let (lo, hi) = (values[0].0, values[values.len() - 1].0);
        (0..free)
            .map(|i| lo + (hi - lo) * i as f64 / (free - 1).max(1) as f64)
            .collect()
    };
    let c = lloyd_1d(&values, init, iterations, Ties::Lower);
    let mut out: Vec<i8> = c
        .iter()
        .map(|v| v.round().clamp(-127.0, 127.0) as i8)
        .collect();
    if keep_zero || out.is_empty() {
        out.push(0);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// k-means over reals; initial centroids at the middles of `k` equal bins between the smallest
/// and largest value. Returns `k` centroids (empty clusters keep their place), none for no
/// values.
pub fn kmeans_f64(values: &[f64], k: usize, iterations: usize) -> Vec<f64> {
    if values.is_empty() || k == 0 {
        return Vec::new();
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let init: Vec<f64> = (0..k)
        .map(|i| lo + (hi - lo) * (i as f64 + 0.5) / k as f64)
        .collect();
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let points: Vec<(f64, f64)> = sorted.into_iter().map(|x| (x, 1.0)).collect();
    lloyd_1d(&points, init, iterations, Ties::Upper)
}
