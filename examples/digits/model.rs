//! The denoiser: a 4-layer MLP on `[z, time features]`, in candle.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{Linear, Module, VarBuilder, VarMap, linear};

/// Width of the hidden layers.
pub const HIDDEN: usize = 256;
/// Frequencies of the time features `sin(2π k t), cos(2π k t)`, `k = 1…F`,
/// plus `t` itself.
pub const FREQS: usize = 8;

/// `f(z, t)`: 64 pixels and a time in, a 64-pixel prediction out (whatever
/// the objective trained it to predict).
pub struct Denoiser {
    layers: Vec<Linear>,
    freqs: Tensor,
}

impl Denoiser {
    /// A freshly initialised network whose weights live in `vars`.
    pub fn new(vars: &VarMap) -> Result<Self> {
        let vb = VarBuilder::from_varmap(vars, DType::F32, &Device::Cpu);
        let input = 64 + 2 * FREQS + 1;
        let layers = vec![
            linear(input, HIDDEN, vb.pp("l1"))?,
            linear(HIDDEN, HIDDEN, vb.pp("l2"))?,
            linear(HIDDEN, HIDDEN, vb.pp("l3"))?,
            linear(HIDDEN, 64, vb.pp("l4"))?,
        ];
        let k: Vec<f32> = (1..=FREQS)
            .map(|k| 2.0 * std::f32::consts::PI * k as f32)
            .collect();
        let freqs = Tensor::from_vec(k, (1, FREQS), &Device::Cpu)?;
        Ok(Denoiser { layers, freqs })
    }

    /// The prediction for states `z` (`[B, 64]`) at times `t` (`[B, 1]`).
    pub fn forward(&self, z: &Tensor, t: &Tensor) -> Result<Tensor> {
        let angle = t.broadcast_mul(&self.freqs)?;
        let mut h = Tensor::cat(&[z, &angle.sin()?, &angle.cos()?, t], 1)?;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            if i + 1 < self.layers.len() {
                h = h.silu()?;
            }
        }
        Ok(h)
    }
}

/// Times as a `[B, 1]` candle tensor.
pub fn times(t: &[f64]) -> Result<Tensor> {
    let t: Vec<f32> = t.iter().map(|&t| t as f32).collect();
    let n = t.len();
    Tensor::from_vec(t, (n, 1), &Device::Cpu)
}
