//! Loader for the golden vectors in `tests/data/*.json` (format in
//! `tests/data/README.md`), shared by every test file: `mod golden;`.
//!
//! The JSON is parsed by a small parser that keeps each number's text, so
//! float32 arrays — written as the shortest decimals that round-trip in f32 —
//! are parsed as f32 directly (no detour through f64, which could round
//! twice), float64 as f64 and int64 as i64.
//!
//! ```ignore
//! mod golden;
//! let g = golden::load("ddim.json");
//! let case = g.case("ddim_timesteps_leading_offset1");
//! let ts: Vec<i64> = case.array("outputs.timesteps").i64s();
//! let sigma = case.f64("steps.0.sigma_next");
//! ```
#![allow(dead_code)]

use std::path::PathBuf;

/// A JSON value that keeps numbers as their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written (also Python's `NaN`, `Infinity`, `-Infinity`).
    Num(String),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in file order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Parses a whole document.
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at byte {}", p.i));
        }
        Ok(v)
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a dotted path of object keys and array indices
    /// (`"steps.3.timestep"`); `None` if any part is missing.
    pub fn path(&self, path: &str) -> Option<&Json> {
        let mut v = self;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            v = match v {
                Json::Arr(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => v.get(part)?,
            };
        }
        Some(v)
    }

    /// As [`Json::path`], panicking with the path if it is missing.
    pub fn at(&self, path: &str) -> &Json {
        self.path(path)
            .unwrap_or_else(|| panic!("golden: no {path:?} in this value"))
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    fn num_text(&self) -> &str {
        match self {
            Json::Num(s) => s,
            other => panic!("golden: expected a number, got {other:?}"),
        }
    }

    /// A number as f64 (correctly rounded from its text).
    pub fn as_f64(&self) -> f64 {
        parse_float::<f64>(self.num_text())
    }
    /// A number as f32, parsed from its text directly.
    pub fn as_f32(&self) -> f32 {
        parse_float::<f32>(self.num_text())
    }
    /// An integer.
    pub fn as_i64(&self) -> i64 {
        let t = self.num_text();
        t.parse::<i64>()
            .unwrap_or_else(|_| panic!("golden: {t:?} is not an integer"))
    }
    /// A boolean.
    pub fn as_bool(&self) -> bool {
        match self {
            Json::Bool(b) => *b,
            other => panic!("golden: expected a boolean, got {other:?}"),
        }
    }
    /// A string.
    pub fn as_str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("golden: expected a string, got {other:?}"),
        }
    }
    /// An array's elements.
    pub fn as_arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            other => panic!("golden: expected an array, got {other:?}"),
        }
    }
    /// A plain JSON list of numbers as f64 (not an encoded array).
    pub fn f64_list(&self) -> Vec<f64> {
        self.as_arr().iter().map(Json::as_f64).collect()
    }
    /// A plain JSON list of integers.
    pub fn i64_list(&self) -> Vec<i64> {
        self.as_arr().iter().map(Json::as_i64).collect()
    }
    /// Whether this is an encoded array `{dtype, shape, data}`.
    pub fn is_array(&self) -> bool {
        self.get("dtype").is_some() && self.get("shape").is_some() && self.get("data").is_some()
    }
    /// Decodes an encoded array `{dtype, shape, data}`.
    pub fn array(&self) -> Array {
        Array::decode(self)
    }
}

fn parse_float<T: std::str::FromStr>(t: &str) -> T {
    let t2 = match t {
        "NaN" => "NaN",
        "Infinity" => "inf",
        "-Infinity" => "-inf",
        other => other,
    };
    t2.parse::<T>()
        .unwrap_or_else(|_| panic!("golden: {t:?} is not a number"))
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }
    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }
    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        let c = *self.s.get(self.i).ok_or("unexpected end of input")?;
        match c {
            b'{' => {
                self.i += 1;
                let mut m = Vec::new();
                self.ws();
                if self.eat("}") {
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    if !self.eat(":") {
                        return Err(format!("expected ':' at byte {}", self.i));
                    }
                    let v = self.value()?;
                    m.push((k, v));
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("}") {
                        return Ok(Json::Obj(m));
                    }
                    return Err(format!("expected ',' or '}}' at byte {}", self.i));
                }
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    if self.eat(",") {
                        continue;
                    }
                    if self.eat("]") {
                        return Ok(Json::Arr(a));
                    }
                    return Err(format!("expected ',' or ']' at byte {}", self.i));
                }
            }
            b'"' => Ok(Json::Str(self.string()?)),
            _ => {
                if self.eat("null") {
                    return Ok(Json::Null);
                }
                if self.eat("true") {
                    return Ok(Json::Bool(true));
                }
                if self.eat("false") {
                    return Ok(Json::Bool(false));
                }
                for lit in ["NaN", "Infinity", "-Infinity"] {
                    if self.eat(lit) {
                        return Ok(Json::Num(lit.to_string()));
                    }
                }
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
                    )
                {
                    self.i += 1;
                }
                if self.i == start {
                    return Err(format!("unexpected character at byte {start}"));
                }
                Ok(Json::Num(
                    std::str::from_utf8(&self.s[start..self.i])
                        .map_err(|e| e.to_string())?
                        .to_string(),
                ))
            }
        }
    }
    fn string(&mut self) -> Result<String, String> {
        if !self.eat("\"") {
            return Err(format!("expected a string at byte {}", self.i));
        }
        let mut out = String::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated escape")?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xD800..0xDC00).contains(&code) && self.eat("\\u") {
                                let lo = self.hex4()?;
                                code = 0x10000 + ((code - 0xD800) << 10) + (lo - 0xDC00);
                            }
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => return Err(format!("bad escape at byte {}", self.i)),
                    }
                }
                _ => {
                    // Copy a whole UTF-8 sequence.
                    let start = self.i - 1;
                    let len = match c {
                        0x00..=0x7f => 1,
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        _ => 4,
                    };
                    self.i = start + len;
                    out.push_str(
                        std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?,
                    );
                }
            }
        }
    }
    fn hex4(&mut self) -> Result<u32, String> {
        let h = std::str::from_utf8(self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?)
            .map_err(|e| e.to_string())?;
        self.i += 4;
        u32::from_str_radix(h, 16).map_err(|e| e.to_string())
    }
}

/// The data of an encoded array, in its own type.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// `float64`.
    F64(Vec<f64>),
    /// `float32`, parsed as f32.
    F32(Vec<f32>),
    /// `int64` (and other integer dtypes).
    I64(Vec<i64>),
}

/// An encoded array `{dtype, shape, data}` (data flat, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The dtype as written (`float64`, `float32`, `int64`, …).
    pub dtype: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: Data,
}

impl Array {
    fn decode(v: &Json) -> Array {
        let dtype = v.at("dtype").as_str().to_string();
        let shape: Vec<usize> = v
            .at("shape")
            .as_arr()
            .iter()
            .map(|d| d.as_i64() as usize)
            .collect();
        let items = v.at("data").as_arr();
        let data = match dtype.as_str() {
            "float32" => Data::F32(items.iter().map(Json::as_f32).collect()),
            "float64" | "float16" | "bfloat16" => {
                Data::F64(items.iter().map(Json::as_f64).collect())
            }
            d if d.starts_with("int") || d.starts_with("uint") => {
                Data::I64(items.iter().map(Json::as_i64).collect())
            }
            d => panic!("golden: unknown dtype {d:?}"),
        };
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            items.len(),
            "golden: shape {shape:?} does not match {} elements",
            items.len()
        );
        Array { dtype, shape, data }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F64(v) => v.len(),
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }
    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The elements as f64 (f32 and integers widened exactly).
    pub fn f64s(&self) -> Vec<f64> {
        match &self.data {
            Data::F64(v) => v.clone(),
            Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
    /// The elements of a float32 array (panics for other dtypes).
    pub fn f32s(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            _ => panic!("golden: {} array read as float32", self.dtype),
        }
    }
    /// The elements of an integer array (panics for other dtypes).
    pub fn i64s(&self) -> Vec<i64> {
        match &self.data {
            Data::I64(v) => v.clone(),
            _ => panic!("golden: {} array read as int64", self.dtype),
        }
    }
}

/// One golden file.
#[derive(Debug, Clone)]
pub struct Golden {
    /// The file name within `tests/data`.
    pub file: String,
    /// The whole document.
    pub root: Json,
}

/// The directory holding the golden files (`tests/data`).
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

/// Loads `tests/data/<file>`.
pub fn load(file: &str) -> Golden {
    let path = data_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("golden: cannot read {}: {e}", path.display()));
    let root = Json::parse(&text)
        .unwrap_or_else(|e| panic!("golden: {} is not valid JSON: {e}", path.display()));
    Golden {
        file: file.to_string(),
        root,
    }
}

impl Golden {
    /// Every case, in file order.
    pub fn cases(&self) -> Vec<Case<'_>> {
        self.root
            .at("cases")
            .as_arr()
            .iter()
            .map(|j| Case { j })
            .collect()
    }
    /// The case with this id (panics if missing).
    pub fn case(&self, id: &str) -> Case<'_> {
        self.cases()
            .into_iter()
            .find(|c| c.id() == id)
            .unwrap_or_else(|| panic!("golden: no case {id:?} in {}", self.file))
    }
    /// The cases whose `function` starts with `prefix`.
    pub fn cases_by_function(&self, prefix: &str) -> Vec<Case<'_>> {
        self.cases()
            .into_iter()
            .filter(|c| c.function().starts_with(prefix))
            .collect()
    }
}

/// One case of a golden file.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    /// The case's JSON.
    pub j: &'a Json,
}

impl<'a> Case<'a> {
    /// `id`.
    pub fn id(&self) -> &'a str {
        self.j.at("id").as_str()
    }
    /// `function` (empty if absent).
    pub fn function(&self) -> &'a str {
        self.j.get("function").map_or("", Json::as_str)
    }
    /// The value at a dotted path (panics if missing).
    pub fn at(&self, path: &str) -> &'a Json {
        self.j
            .path(path)
            .unwrap_or_else(|| panic!("golden case {}: no {path:?}", self.id()))
    }
    /// The value at a dotted path, if present and not `null`.
    pub fn opt(&self, path: &str) -> Option<&'a Json> {
        self.j.path(path).filter(|v| !v.is_null())
    }
    /// The encoded array at a dotted path.
    pub fn array(&self, path: &str) -> Array {
        self.at(path).array()
    }
    /// The number at a dotted path as f64.
    pub fn f64(&self, path: &str) -> f64 {
        self.at(path).as_f64()
    }
    /// The integer at a dotted path.
    pub fn i64(&self, path: &str) -> i64 {
        self.at(path).as_i64()
    }
    /// The string at a dotted path.
    pub fn str(&self, path: &str) -> &'a str {
        self.at(path).as_str()
    }
    /// `config`.
    pub fn config(&self) -> &'a Json {
        self.at("config")
    }
    /// The recorded steps of a sampling loop (empty if none).
    pub fn steps(&self) -> &'a [Json] {
        self.j.get("steps").map_or(&[], Json::as_arr)
    }
}

/// `|a − b| ≤ tol·max(|a|, |b|)`, with equal values (including infinities) passing.
pub fn close_rel(a: f64, b: f64, tol: f64) -> bool {
    a == b || (a - b).abs() <= tol * a.abs().max(b.abs())
}

/// Distance in units in the last place between two finite f32 values.
pub fn ulps_f32(a: f32, b: f32) -> u32 {
    fn key(x: f32) -> i64 {
        let b = x.to_bits() as i32 as i64;
        if b < 0 { i64::from(i32::MIN) - b } else { b }
    }
    (key(a) - key(b)).unsigned_abs() as u32
}
