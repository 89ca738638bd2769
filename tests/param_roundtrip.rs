//! Parameterization round trips: all 49 ordered pairs `(A, B)` of
//! prediction types, converted `A → B → A` and checked against the ground
//! truth built from known `x` and `ε`, on every closed-form schedule at
//! several times.
//!
//! Tolerance: `1e-12 · S` with
//! `S = (|x| + |ε|) · max(1, |c_A|) · max(1, |inv_A|) · max(1, |c_B|)`, where
//! `c_·` are the prediction coefficients `(c_x, c_ε)` and `inv_A` the inverse
//! coefficients `(z, p) ↦ (x̂, ε̂)`: every product either side forms is
//! bounded by `S` (e.g. the score's `1/σ` and ε's `1/α` near the ends).

use gaussflow::schedule::{Flow, Ve, VpCosine, VpLinear};
use gaussflow::{Error, Prediction, Schedule};

fn schedules() -> Vec<Box<dyn Schedule>> {
    vec![
        Box::new(Flow),
        Box::new(VpCosine),
        Box::new(VpLinear::default()),
        Box::new(Ve::default()),
    ]
}

const TIMES: [f64; 8] = [0.001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99];
const XE: [(f64, f64); 4] = [(0.7, -1.3), (-2.5, 0.4), (1e-3, 3.0), (40.0, -0.02)];

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(1.0f64, |m, x| m.max(x.abs()))
}

#[test]
fn all_49_pairs_round_trip_and_match_ground_truth() {
    for sch in schedules() {
        for &t in &TIMES {
            let at = sch.at(t).unwrap();
            let mut pairs = 0;
            for a in Prediction::ALL {
                let inv_a = a.inverse(&at).unwrap();
                let (cxa, cea) = a.coeffs(&at);
                for b in Prediction::ALL {
                    let (cxb, ceb) = b.coeffs(&at);
                    let scale_c = max_abs(&[cxa, cea])
                        * max_abs(&[
                            inv_a.x_hat[0],
                            inv_a.x_hat[1],
                            inv_a.eps_hat[0],
                            inv_a.eps_hat[1],
                        ])
                        * max_abs(&[cxb, ceb]);
                    for &(x, eps) in &XE {
                        let z = at.alpha * x + at.sigma * eps;
                        let s = 1e-12 * (x.abs() + eps.abs()) * scale_c;
                        let label = format!("{} t={t} {a}→{b} x={x} ε={eps}", sch.name());
                        // Ground truth, written from the table (not through param).
                        let truth = |p: Prediction| match p {
                            Prediction::X => x,
                            Prediction::Eps => eps,
                            Prediction::V => at.alpha * eps - at.sigma * x,
                            Prediction::Velocity => at.d_alpha * x + at.d_sigma * eps,
                            Prediction::FlowVelocity => -(at.d_alpha * x + at.d_sigma * eps),
                            Prediction::Score => -eps / at.sigma,
                            Prediction::EdmF => {
                                // EDM: D = c_skip x_ve + c_out F at ρ = σ/α.
                                let rho = at.sigma / at.alpha;
                                let x_ve = z / at.alpha;
                                let c_skip = 1.0 / (rho * rho + 1.0);
                                let c_out = rho / (rho * rho + 1.0).sqrt();
                                (x - c_skip * x_ve) / c_out
                            }
                        };
                        let pa = truth(a);
                        assert!(
                            (a.from_x_eps(&at, x, eps) - pa).abs() <= s,
                            "{label}: from_x_eps"
                        );
                        let (xh, eh) = a.to_x_eps(&at, z, pa).unwrap();
                        assert!(
                            (xh - x).abs() <= s && (eh - eps).abs() <= s,
                            "{label}: x̂ {xh} ε̂ {eh}"
                        );
                        let pb = a.convert(b, &at, z, pa).unwrap();
                        assert!((pb - truth(b)).abs() <= s, "{label}: {pb} vs {}", truth(b));
                        let back = b.convert(a, &at, z, pb).unwrap();
                        // The way back goes through B's inverse: bound with it too.
                        let inv_b = b.inverse(&at).unwrap();
                        let s_back =
                            s * max_abs(&[
                                inv_b.x_hat[0],
                                inv_b.x_hat[1],
                                inv_b.eps_hat[0],
                                inv_b.eps_hat[1],
                            ]) * max_abs(&[cxb, ceb]);
                        assert!((back - pa).abs() <= s_back, "{label}: back {back} vs {pa}");
                    }
                    pairs += 1;
                }
            }
            assert_eq!(pairs, 49);
        }
    }
}

/// At the ends only some conversions exist: ε (and the score) cannot be
/// inverted where `α = 0`; nothing recovers `ε̂` where `σ = 0` except ε itself.
#[test]
fn end_points_refuse_what_they_cannot_invert() {
    let at1 = VpCosine.at(1.0).unwrap();
    assert_eq!(at1.alpha, 0.0);
    for p in [Prediction::Eps, Prediction::Score] {
        assert!(
            matches!(p.inverse(&at1), Err(Error::NotInvertible { .. })),
            "{p}"
        );
    }
    for p in [
        Prediction::X,
        Prediction::V,
        Prediction::Velocity,
        Prediction::FlowVelocity,
        Prediction::EdmF,
    ] {
        let inv = p.inverse(&at1).unwrap();
        // z = σ ε = ε at t = 1, x = 0.3: every one recovers x and ε.
        let (x, eps) = (0.3, -1.1);
        let z = at1.sigma * eps;
        let (xh, eh) = inv.apply(z, p.from_x_eps(&at1, x, eps));
        assert!(
            (xh - x).abs() < 1e-15 && (eh - eps).abs() < 1e-15,
            "{p}: {xh} {eh}"
        );
    }
    let at0 = VpCosine.at(0.0).unwrap();
    assert!(matches!(
        Prediction::X.inverse(&at0),
        Err(Error::NotInvertible { .. })
    ));
    assert!(matches!(
        Prediction::Score.inverse(&at0),
        Err(Error::NotInvertible { .. })
    ));
    assert!(Prediction::Eps.inverse(&at0).is_ok());
    // EDM's F is −ε at σ = 0 (c_out → 0): invertible at both ends.
    assert!(Prediction::EdmF.inverse(&at0).is_ok());
}
