//! Sample quality without a trained classifier: a 5-nearest-neighbour vote
//! over the training images (pixel space).

use crate::data::{Digits, PIXELS};

/// Neighbours in the vote.
pub const K: usize = 5;
/// Votes (of [`K`]) for one label that make a sample "confident".
pub const CONFIDENT: usize = 4;

/// The quality of a set of images judged against the training set.
pub struct Quality {
    /// Share of images whose `K` nearest training images agree on one label
    /// at least `CONFIDENT` times: reads as a digit, not a blend.
    pub confident: f64,
    /// Entropy of the voted labels over ln 10: 1 when all ten digits are
    /// equally common, 0 when one digit is all the model makes.
    pub balance: f64,
    /// Mean Euclidean distance to the nearest training image (pixels in
    /// [−1, 1]): far above the held-out data's means off the data, far
    /// below means copies of the training set.
    pub nn_distance: f64,
}

/// Judges `images` (`[n, 64]`) against `train`.
pub fn judge(images: &[f32], train: &Digits) -> Quality {
    let n = images.len() / PIXELS;
    let mut confident = 0usize;
    let mut counts = [0usize; 10];
    let mut dist_sum = 0.0;
    for i in 0..n {
        let img = &images[i * PIXELS..(i + 1) * PIXELS];
        // The K smallest squared distances, kept sorted (K is tiny).
        let mut best: Vec<(f32, u8)> = Vec::with_capacity(K + 1);
        for j in 0..train.len() {
            let d: f32 = img
                .iter()
                .zip(train.image(j))
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            if best.len() < K || d < best[K - 1].0 {
                let at = best.partition_point(|&(e, _)| e <= d);
                best.insert(at, (d, train.labels[j]));
                best.truncate(K);
            }
        }
        let mut votes = [0usize; 10];
        for &(_, l) in &best {
            votes[l as usize] += 1;
        }
        let (label, top) = votes
            .iter()
            .enumerate()
            .max_by_key(|&(l, &v)| (v, std::cmp::Reverse(l)))
            .map(|(l, &v)| (l, v))
            .unwrap_or((0, 0));
        confident += usize::from(top >= CONFIDENT);
        counts[label] += 1;
        dist_sum += f64::from(best[0].0).sqrt();
    }
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.ln()
        })
        .sum();
    Quality {
        confident: confident as f64 / n as f64,
        balance: entropy / 10f64.ln(),
        nn_distance: dist_sum / n as f64,
    }
}
