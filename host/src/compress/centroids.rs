//! Shared weights under centroid fine-tuning: per layer, each weight's cluster, the centroids in
//! int8 units (0 and +-127 fixed) and Adam's moments for them.

use super::kmeans::kmeans_f64;

/// A layer's shared weights: per-channel scales, each weight's cluster, the centroids (in int8
/// units) and Adam's moments for them.
#[derive(Debug, Clone)]
pub struct SharedLayer {
    /// Per output channel `max |w| / 127`.
    pub scales: Vec<f32>,
    /// Weights per output channel.
    pub row: usize,
    /// Cluster of every weight.
    pub index: Vec<u8>,
    /// Shared values, int8 units.
    pub centroids: Vec<f64>,
    /// Centroids that never move (0, +-127).
    pub fixed: Vec<bool>,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl SharedLayer {
    /// Clusters one layer's weights (`row` per output channel) into `2^bits` shared values.
    pub fn new(w: &[f32], row: usize, bits: u8, iterations: usize) -> Self {
        let scales: Vec<f32> = w
            .chunks(row)
            .map(|r| r.iter().fold(0f32, |a, x| a.max(x.abs())) / 127.0)
            .collect();
        let q: Vec<f64> = w
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let s = scales[i / row];
                if s > 0.0 {
                    f64::from(x / s).clamp(-127.0, 127.0)
                } else {
                    0.0
                }
            })
            .collect();
        // Fixed: 0, -127, +127; the rest by 1-D k-means over the nonzero values in between.
        let mut centroids = vec![0.0, -127.0, 127.0];
        let inner: Vec<f64> = q
            .iter()
            .copied()
            .filter(|&x| x != 0.0 && x.abs() < 127.0)
            .collect();
        let free = (1usize << bits).saturating_sub(3);
        centroids.extend(kmeans_f64(&inner, free, iterations));
        let fixed = (0..centroids.len()).map(|i| i < 3).collect();
        let index = q
            .iter()
            .map(|&x| {
                if x == 0.0 {
                    0
                } else {
                    (1..centroids.len())
                        .min_by(|&a, &b| {
                            (centroids[a] - x)
                                .abs()
                                .total_cmp(&(centroids[b] - x).abs())
                        })
                        .unwrap_or(0) as u8
                }
            })
            .collect();
        let k = centroids.len();
        Self {
            scales,
            row,
            index,
            centroids,
            fixed,
            m: vec![0.0; k],
            v: vec![0.0; k],
        }
    }

    /// The float weights `s_c * centroid`.
    pub fn weights(&self) -> Vec<f32> {
        self.index
            .iter()
            .enumerate()
            .map(|(i, &k)| self.scales[i / self.row] * self.centroids[k as usize] as f32)
            .collect()
    }

    /// One Adam step on the centroids from the weights' gradient (summed per cluster, chain
    /// rule through `w = s_c * centroid`).
    pub fn step(&mut self, grad: &[f32], lr: f64, t: i32) {
        let mut g = vec![0f64; self.centroids.len()];
        for (i, (&k, &gw)) in self.index.iter().zip(grad).enumerate() {
            g[k as usize] += f64::from(gw) * f64::from(self.scales[i / self.row]);
        }
        let (b1, b2, eps) = (0.9, 0.999, 1e-12);
        for (k, &g) in g.iter().enumerate() {
            if self.fixed[k] {
                continue;
            }
            self.m[k] = b1 * self.m[k] + (1.0 - b1) * g;
            self.v[k] = b2 * self.v[k] + (1.0 - b2) * g * g;
            let mh = self.m[k] / (1.0 - b1.powi(t));
            let vh = self.v[k] / (1.0 - b2.powi(t));
            self.centroids[k] =
                (self.centroids[k] - lr * mh / (vh.sqrt() + eps)).clamp(-126.0, 126.0);
        }
    }

    /// Rounds the centroids to the int8 values the blob will store.
    pub fn round(&mut self) {
        for c in &mut self.centroids {
            *c = c.round();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_layer_pins_each_channel_scale_and_keeps_zeros() {
        let w: Vec<f32> = (0..64)
            .map(|i| {
                if i % 5 == 0 {
                    0.0
                } else {
                    ((i * 37 % 23) as f32 - 11.0) * 0.01
                }
            })
            .collect();
        let mut l = SharedLayer::new(&w, 16, 4, 20);
        assert!(l.centroids.len() <= 16);
        l.round();
        let shared = l.weights();
        for (r, row) in shared.chunks(16).enumerate() {
            let max = row.iter().fold(0f32, |a, x| a.max(x.abs()));
            assert!(
                (max / 127.0 - l.scales[r]).abs() <= l.scales[r] * 1e-6,
                "row {r}"
            );
        }
        for (a, b) in w.iter().zip(&shared) {
            assert_eq!(*a == 0.0, *b == 0.0);
        }
    }

    #[test]
    fn centroid_step_follows_the_summed_gradient() {
        let w = [0.5f32, 1.0, -1.0, 0.25];
        let mut l = SharedLayer::new(&w, 4, 2, 10);
        let k = l.index[3] as usize;
        assert!(!l.fixed[k]);
        let before = l.centroids[k];
        l.step(&[0.0, 0.0, 0.0, 1.0], 0.5, 1);
        assert!(l.centroids[k] < before);
        assert_eq!(l.centroids[1], -127.0);
        assert_eq!(l.centroids[2], 127.0);
    }
}
