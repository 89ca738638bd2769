//! The UCI digits (examples/digits/data/README.md): 1797 images of 8×8
//! pixels in 0–16, scaled to [−1, 1], split once into training and held-out
//! images by a fixed shuffle.

use std::io::Read;

/// Pixels per image.
pub const PIXELS: usize = 64;

/// A set of images, row-major `[n, 64]` in [−1, 1], with their labels.
pub struct Digits {
    pub x: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Digits {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn image(&self, i: usize) -> &[f32] {
        &self.x[i * PIXELS..(i + 1) * PIXELS]
    }
}

/// Reads `digits.csv.gz` (64 pixels then the label per line) and splits it
/// into `(train, held_out)` with `held_out` images.
pub fn load(path: &std::path::Path, held_out: usize) -> Result<(Digits, Digits), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows: Vec<(Vec<f32>, u8)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(format!("line {}: {} fields, want 65", n + 1, fields.len()));
        }
        let parse = |s: &str| {
            s.trim()
                .parse::<f32>()
                .map_err(|e| format!("line {}: {s:?}: {e}", n + 1))
        };
        let pixels = fields[..PIXELS]
            .iter()
            .map(|s| parse(s).map(|v| v / 8.0 - 1.0))
            .collect::<Result<Vec<f32>, String>>()?;
        let label = parse(fields[PIXELS])? as u8;
        rows.push((pixels, label));
    }
    if rows.len() <= held_out {
        return Err(format!("{} images, cannot hold out {held_out}", rows.len()));
    }
    // Fisher–Yates with a fixed seed: the same split on every machine.
    let mut rng = SplitMix(0x5eed_d161);
    for i in (1..rows.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        rows.swap(i, j);
    }
    let split = |rows: &[(Vec<f32>, u8)]| Digits {
        x: rows.iter().flat_map(|r| r.0.iter().copied()).collect(),
        labels: rows.iter().map(|r| r.1).collect(),
    };
    let (test, train) = rows.split_at(held_out);
    Ok((split(train), split(test)))
}

/// SplitMix64: the example's host randomness (the split, batch indices);
/// times and noise are gaussflow's Philox.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
