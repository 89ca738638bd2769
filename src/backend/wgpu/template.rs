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
//!
//! `//#store NAME BUFFER SLOT` stamps out the quad store function of
//! `shaders/store_quad.wgsl` for one output buffer (WGSL cannot pass a
//! storage buffer to a function, so each output needs its own copy). The
//! directive's line stays empty and the function is appended after the
//! source's last line, so line numbers are kept there too.

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
/// The quad store function stamped out by `//#store` (not a shader itself).
pub(crate) const STORE_QUAD: &str = include_str!("../../../shaders/store_quad.wgsl");

/// Every flag a source may test.
pub(crate) const KNOWN_FLAGS: &[&str] = &[
    "F32",
    "F16",
    "BF16",
    "PHILOX",
    "BROWNIAN",
    "IDS",
    "NOISE_BUF",
    "NOISE",
    "TARGET",
    "IN0",
    "IN1",
    "IN2",
    "IN3",
    "IN4",
    "IN5",
    "IN6",
    "IN7",
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

/// Keeps or drops the lines of `src` by `flags` and stamps out the active
/// `//#store` directives (see the module docs).
pub(crate) fn preprocess(src: &str, flags: &BTreeSet<&str>) -> Result<String, String> {
    // One entry per open `//#if`: (condition, in the else branch, enclosing active).
    let mut stack: Vec<(bool, bool, bool)> = Vec::new();
    let mut out = String::with_capacity(src.len());
    let mut stores = String::new();
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
                (Some("store"), Some(name), Some(buffer)) => {
                    let slot = words.next();
                    match (slot, words.next()) {
                        (Some(slot), None) if active => {
                            stores.push_str(&store_quad(name, buffer, slot, flags)?);
                        }
                        (Some(_), None) => {}
                        _ => return Err(format!("{}: malformed directive {t:?}", at())),
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
    out.push_str(&stores);
    Ok(out)
}

/// `STORE_QUAD` for one output: function `name` writing slot `slot` through
/// the storage buffer `buffer`, specialised by `flags`.
fn store_quad(
    name: &str,
    buffer: &str,
    slot: &str,
    flags: &BTreeSet<&str>,
) -> Result<String, String> {
    let ident = |w: &str| {
        w.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !ident(name)
        || !ident(buffer)
        || slot.is_empty()
        || !slot.chars().all(|c| c.is_ascii_digit())
    {
        return Err(format!(
            "//#store {name} {buffer} {slot}: expected NAME BUFFER SLOT (identifiers, slot number)"
        ));
    }
    let body = STORE_QUAD
        .split_once("fn NAME(")
        .map(|(_, rest)| format!("fn NAME({rest}"))
        .ok_or("store_quad.wgsl has no `fn NAME(`")?
        .replace("NAME", name)
        .replace("BUFFER", buffer)
        .replace("SLOTu", &format!("{slot}u"));
    if body.contains("//#store") {
        return Err("store_quad.wgsl must not contain //#store".into());
    }
    preprocess(&body, flags)
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

    #[test]
    fn store_directive_stamps_one_function_per_active_output() {
        let src = "a\n//#store put_z z 1\n//#if XHAT\n//#store put_x xh 5\n//#endif\nb\n";
        let plain = preprocess(src, &flags(&["F32"])).unwrap();
        // The source's lines keep their numbers; the function follows them.
        assert_eq!(
            plain.lines().take(6).collect::<Vec<_>>(),
            ["a", "", "", "", "", "b"]
        );
        assert!(plain.contains("fn put_z(base: u32"));
        assert!(plain.contains("let k = off(1u) + base;"));
        assert!(plain.contains("z[k + i] = st(v[i]);"));
        assert!(!plain.contains("put_x(") && !plain.contains("merge_bf16"));
        let both = preprocess(src, &flags(&["BF16", "XHAT"])).unwrap();
        assert!(both.contains("fn put_x(base: u32") && both.contains("off(5u)"));
        assert!(both.contains("xh[w] = merge_bf16(xh[w]"));
        assert!(!both.contains("st(v[i])"));
    }

    #[test]
    fn rejects_malformed_store_directives() {
        let f = flags(&[]);
        for bad in [
            "//#store put_z z\n",
            "//#store put_z z 1 2\n",
            "//#store put-z z 1\n",
            "//#store put_z z one\n",
        ] {
            assert!(preprocess(bad, &f).is_err(), "{bad:?}");
        }
    }
}
