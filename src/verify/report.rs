//! Result rows of the checks (what `gaussflow verify [--json]` prints) and
//! the comparison of one output with its reference.

use super::tolerance::Tolerance;
use crate::tensor::DType;

/// The fused kernel a row checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Op {
    /// Forward noising.
    Noise,
    /// Sampler step.
    Step,
    /// Weighted loss and gradient.
    Loss,
}

impl Op {
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Noise => "noise",
            Op::Step => "step",
            Op::Loss => "loss",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Outcome of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Status {
    /// Every element within tolerance.
    Pass,
    /// An element outside tolerance, unwritten (NaN), or the runner failed.
    Fail,
    /// Not run: the runner does not support this storage type.
    Skip,
}

/// One output of one kernel run against the reference.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CheckRow {
    /// What ran it ([`KernelRunner::label`](super::KernelRunner::label)).
    pub runner: String,
    /// The kernel.
    pub op: Op,
    /// The variant (see [`Variant::name`](super::Variant::name)).
    pub variant: String,
    /// The output checked (`z`, `target`, `out`, `x_hat`, `loss`, `grad`;
    /// `-` for a skipped or failed run).
    pub output: String,
    /// Storage type.
    pub dtype: DType,
    /// Samples `B`.
    pub batch: usize,
    /// Elements per sample `D`.
    pub size: usize,
    /// Largest `|got − ref|` (infinite if an element is NaN; JSON `null`).
    pub max_abs_err: f64,
    /// Largest `|got − ref| / scale`, the error relative to the magnitude of
    /// the terms that make up the value.
    pub max_rel_err: f64,
    /// The tolerance relative to the terms ([`Tolerance::relative`]).
    pub tolerance: f64,
    /// Largest `|got − ref| / bound` ([`Tolerance::bound`]): the row passes
    /// iff ≤ 1.
    pub worst_ratio: f64,
    /// Pass, fail or skip.
    pub status: Status,
    /// Why a row failed or was skipped, or where its worst element is.
    pub note: String,
}

impl CheckRow {
    /// The row passed.
    pub fn passed(&self) -> bool {
        self.status == Status::Pass
    }

    /// The row failed.
    pub fn failed(&self) -> bool {
        self.status == Status::Fail
    }
}

/// Where a row comes from, before the comparison fills in the numbers.
#[derive(Debug, Clone)]
pub(crate) struct RowHead {
    pub runner: String,
    pub op: Op,
    pub variant: String,
    pub dtype: DType,
    pub batch: usize,
    pub size: usize,
}

impl RowHead {
    /// A row with no numbers.
    pub fn row(&self, output: &str, status: Status, note: String) -> CheckRow {
        CheckRow {
            runner: self.runner.clone(),
            op: self.op,
            variant: self.variant.clone(),
            output: output.to_string(),
            dtype: self.dtype,
            batch: self.batch,
            size: self.size,
            max_abs_err: f64::NAN,
            max_rel_err: f64::NAN,
            tolerance: f64::NAN,
            worst_ratio: f64::NAN,
            status,
            note,
        }
    }

    /// Compares `got` with `want`, element `i` allowed `tol.bound(scale[i])`.
    /// A NaN (an element the kernel did not write over the poison) fails.
    pub fn compare(
        &self,
        output: &str,
        got: &[f64],
        want: &[f64],
        scale: &[f64],
        tol: Tolerance,
    ) -> CheckRow {
        let mut row = self.row(output, Status::Pass, String::new());
        row.tolerance = tol.relative();
        if got.len() != want.len() {
            row.status = Status::Fail;
            row.note = format!("{} elements returned, {} expected", got.len(), want.len());
            return row;
        }
        let (mut max_abs, mut max_rel, mut worst) = (0.0f64, 0.0f64, 0.0f64);
        let (mut worst_at, mut nan_count, mut first_nan) = (0usize, 0usize, None);
        for i in 0..got.len() {
            let err = (got[i] - want[i]).abs();
            if !err.is_finite() {
                nan_count += 1;
                first_nan.get_or_insert(i);
                continue;
            }
            max_abs = max_abs.max(err);
            if scale[i] > 0.0 {
                max_rel = max_rel.max(err / scale[i]);
            }
            let ratio = if err == 0.0 {
                0.0
            } else {
                err / tol.bound(scale[i], want[i])
            };
            if ratio > worst {
                (worst, worst_at) = (ratio, i);
            }
        }
        let per_sample = got.len() == self.batch && output == "loss";
        let at = |i: usize| {
            let d = self.size.max(1);
            if per_sample {
                format!("sample {i}")
            } else {
                format!("[{}, {}]", i / d, i % d)
            }
        };
        row.max_abs_err = max_abs;
        row.max_rel_err = max_rel;
        row.worst_ratio = worst;
        if let Some(i) = first_nan {
            row.status = Status::Fail;
            row.max_abs_err = f64::INFINITY;
            row.worst_ratio = f64::INFINITY;
            row.note = format!(
                "{nan_count} elements not finite (unwritten?), first at {}: got {}, want {}",
                at(i),
                got[i],
                want[i]
            );
        } else if worst > 1.0 {
            row.status = Status::Fail;
            row.note = format!(
                "worst at {}: got {:e}, want {:e}, scale {:e}",
                at(worst_at),
                got[worst_at],
                want[worst_at],
                scale[worst_at]
            );
        }
        row
    }
}

/// Counts of a set of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Summary {
    /// Rows that passed.
    pub passed: usize,
    /// Rows that failed.
    pub failed: usize,
    /// Rows skipped (storage type unsupported).
    pub skipped: usize,
}

impl Summary {
    /// Counts `rows`.
    pub fn of(rows: &[CheckRow]) -> Summary {
        let mut s = Summary::default();
        for r in rows {
            match r.status {
                Status::Pass => s.passed += 1,
                Status::Fail => s.failed += 1,
                Status::Skip => s.skipped += 1,
            }
        }
        s
    }
}

/// One line per op family: how many rows (variants × outputs × storage types
/// × sizes) passed, failed or were skipped, and the worst `err/tol` per
/// storage type (≤ 1 passes). Failed rows follow in full, so a failure is
/// never summarised away. What `gaussflow verify` prints unless asked for
/// the full table.
pub fn format_summary(rows: &[CheckRow]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let mut ops: Vec<Op> = Vec::new();
    for r in rows {
        if !ops.contains(&r.op) {
            ops.push(r.op);
        }
    }
    for op in ops {
        let of: Vec<&CheckRow> = rows.iter().filter(|r| r.op == op).collect();
        let mut variants: Vec<&str> = of.iter().map(|r| r.variant.as_str()).collect();
        variants.sort_unstable();
        variants.dedup();
        let count = |st: Status| of.iter().filter(|r| r.status == st).count();
        let worst: Vec<String> = DType::ALL
            .iter()
            .filter_map(|&d| {
                let w = of
                    .iter()
                    .filter(|r| r.dtype == d && r.status != Status::Skip)
                    .map(|r| r.worst_ratio)
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
                Some(format!("{} {w:.3}", d.name()))
            })
            .collect();
        let _ = writeln!(
            s,
            "  {:<5} {:>2} variants, {:>4} rows: {:>4} passed, {} failed, {} skipped; worst err/tol {}",
            op.name(),
            variants.len(),
            of.len(),
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
            if worst.is_empty() {
                "-".into()
            } else {
                worst.join(", ")
            }
        );
    }
    let failed: Vec<CheckRow> = rows
        .iter()
        .filter(|r| r.status == Status::Fail)
        .cloned()
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "failed rows:\n{}", format_table(&failed));
    }
    s
}

/// The rows as a fixed-width text table, one line each, with a header. The
/// runner column shows the label up to its first `:` (the backend's name;
/// the full label, with the device, is in [`CheckRow::runner`]).
pub fn format_table(rows: &[CheckRow]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<12} {:<5} {:<16} {:<6} {:<4} {:>3} {:>7} {:>10} {:>10} {:>9} {:>7} {:<4} note",
        "runner",
        "op",
        "variant",
        "output",
        "type",
        "B",
        "D",
        "max abs",
        "max rel",
        "tol rel",
        "err/tol",
        "ok"
    );
    for r in rows {
        let status = match r.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        let _ = writeln!(
            s,
            "{:<12} {:<5} {:<16} {:<6} {:<4} {:>3} {:>7} {:>10.3e} {:>10.3e} {:>9.2e} {:>7.3} {:<4} {}",
            truncate(r.runner.split(':').next().unwrap_or_default(), 12),
            r.op,
            r.variant,
            r.output,
            r.dtype.name(),
            r.batch,
            r.size,
            r.max_abs_err,
            r.max_rel_err,
            r.tolerance,
            r.worst_ratio,
            status,
            r.note
        );
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> RowHead {
        RowHead {
            runner: "test".into(),
            op: Op::Step,
            variant: "v".into(),
            dtype: DType::F32,
            batch: 2,
            size: 2,
        }
    }

    #[test]
    fn an_unwritten_element_fails_and_is_located() {
        let tol = Tolerance::elementwise(DType::F32);
        let r = head().compare(
            "out",
            &[1.0, 2.0, f64::NAN, 4.0],
            &[1.0, 2.0, 3.0, 4.0],
            &[1.0; 4],
            tol,
        );
        assert_eq!(r.status, Status::Fail);
        assert!(r.note.contains("[1, 0]"), "{}", r.note);
    }

    #[test]
    fn errors_are_judged_against_the_terms_not_the_result() {
        let tol = Tolerance::elementwise(DType::F32);
        // A result of 0 from terms of magnitude 10: 5e-6 is within 1e-6·10.
        let ok = head().compare("out", &[5e-6], &[0.0], &[10.0], tol);
        assert_eq!(ok.status, Status::Pass, "{ok:?}");
        let bad = head().compare("out", &[5e-5], &[0.0], &[10.0], tol);
        assert_eq!(bad.status, Status::Fail);
    }
}
