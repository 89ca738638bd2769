//! WGSL variants from one source per kernel: a line-based `//#if` pass.
//!
//! Each kernel has one source file in `shaders/`; its variants (storage type,
//! which inputs and outputs exist, where the noise comes from) differ in which
//! bindings exist and how elements are loaded and stored, which override
//! constants cannot express. So a variant is the source with the lines
//! between `//#if FLAG` (or `//#if !FLAG`), `//#else` and `//#endif` kept or
//! dropped by the variant's flags. Dropped lines become empty lines, so line
//! numbers in compiler messages still match the files. Directives nest;
//! a flag the kernel does not know is an error, so a typo cannot silently
//! drop code.

use std::collections::BTreeSet;

use crate::tensor::DType;

/// The shared Philox4x32-10 + Box–Muller source.
pub(crate) const PHILOX: &str = include_str!("../../../shaders/philox.wgsl");
/// Launch parameters, storage types, noise source.
pub(crate) const COMMON: &str = include_str!("../../../shaders/common.wgsl");
/// Forward noising.
pub(crate) const NOISE: &str = include_str!("../../../shaders/noise.wgsl");
/// Sampler step.
pub(crate) const STEP: &str = include_str!("../../../shaders/step.wgsl");
/// Loss and gradient.
pub(crate) const LOSS: &str = include_str!("../../../shaders/loss.wgsl");
/// Raw Philox dump (tests).
pub(crate) const PHILOX_DUMP: &str = include_str!("../../../shaders/philox_dump.wgsl");

/// Every flag a source may test.
pub(crate) const KNOWN_FLAGS: &[&str] = &[
    "F32",
    "F16",
    "BF16",
    "PHILOX",
    "IDS",
    "NOISE_BUF",
    "NOISE",
    "TARGET",
    "IN0",
    "IN1",
    "IN2",
    "IN3",
    "XHAT",
    "REBUILD",
    "GRAD",
];

/// The flag naming a storage type.
pub(crate) fn dtype_flag(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
    }
}

/// Keeps or drops the lines of `src` by `flags` (see the module docs).
pub(crate) fn preprocess(src: &str, flags: &BTreeSet<&str>) -> Result<String, String> {
    // One entry per open `//#if`: (condition, in the else branch, enclosing active).
    let mut stack: Vec<(bool, bool, bool)> = Vec::new();
    let mut out = String::with_capacity(src.len());
    for (n, line) in src.lines().enumerate() {
        let at = || format!("line {}", n + 1);
        let active = stack
            .last()
            .is_none_or(|&(c, e, parent)| parent && (c != e));
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("//#") {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("if"), Some(cond), None) => {
                    let (neg, name) = match cond.strip_prefix('!') {
                        Some(name) => (true, name),
                        None => (false, cond),
                    };
                    if !KNOWN_FLAGS.contains(&name) {
                        return Err(format!("{}: unknown flag {name:?}", at()));
                    }
                    stack.push((flags.contains(name) != neg, false, active));
                }
                (Some("else"), None, None) => match stack.last_mut() {
                    Some(top) if !top.1 => top.1 = true,
                    _ => return Err(format!("{}: //#else without //#if", at())),
                },
                (Some("endif"), None, None) => {
                    if stack.pop().is_none() {
                        return Err(format!("{}: //#endif without //#if", at()));
                    }
                }
                _ => return Err(format!("{}: malformed directive {t:?}", at())),
            }
            out.push('\n');
        } else {
            if active {
                out.push_str(line);
            }
            out.push('\n');
        }
    }
    if !stack.is_empty() {
        return Err(format!("{} unclosed //#if", stack.len()));
    }
    Ok(out)
}

/// The full WGSL module of a kernel variant: `enable f16;` when the storage
/// is f16, the Philox source when noise is generated, the common part, then
/// the kernel. `parts` names which sources, `flags` the variant.
pub(crate) fn assemble(parts: &[&str], flags: &BTreeSet<&str>) -> Result<String, String> {
    let mut src = String::new();
    if flags.contains("F16") {
        src.push_str("enable f16;\n");
    }
    for p in parts {
        src.push_str(&preprocess(p, flags)?);
    }
    Ok(src)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: &[&'static str]) -> BTreeSet<&'static str> {
        f.iter().copied().collect()
    }

    fn kept(src: &str, f: &[&'static str]) -> Vec<String> {
        preprocess(src, &flags(f))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    const SRC: &str =
        "a\n//#if IN0\nb\n//#if !IN1\nc\n//#else\nd\n//#endif\n//#else\ne\n//#endif\nf\n";

    #[test]
    fn keeps_the_branches_the_flags_select() {
        assert_eq!(kept(SRC, &[]), ["a", "e", "f"]);
        assert_eq!(kept(SRC, &["IN0"]), ["a", "b", "c", "f"]);
        assert_eq!(kept(SRC, &["IN0", "IN1"]), ["a", "b", "d", "f"]);
        assert_eq!(kept(SRC, &["IN1"]), ["a", "e", "f"]);
    }

    #[test]
    fn keeps_line_numbers() {
        let out = preprocess(SRC, &flags(&["IN0"])).unwrap();
        assert_eq!(out.lines().count(), SRC.lines().count());
        assert_eq!(out.lines().nth(2), Some("b"));
    }

    #[test]
    fn rejects_malformed_sources() {
        let f = flags(&[]);
        assert!(
            preprocess("//#if TYPO\n//#endif\n", &f)
                .unwrap_err()
                .contains("TYPO")
        );
        assert!(preprocess("//#if IN0\n", &f).is_err());
        assert!(preprocess("//#endif\n", &f).is_err());
        assert!(preprocess("//#else\n", &f).is_err());
        assert!(preprocess("//#if IN0\n//#else\n//#else\n//#endif\n", &f).is_err());
        assert!(preprocess("//#iff IN0\n", &f).is_err());
    }

    #[test]
    fn every_shader_source_is_well_formed() {
        for src in [PHILOX, COMMON, NOISE, STEP, LOSS, PHILOX_DUMP] {
            preprocess(src, &flags(&[])).unwrap();
        }
    }
}
