//! Cache keys. [`CacheKey`] names every field that goes into a stage's key; [`CacheKey::digest`]
//! encodes it canonically (fixed field order, sorted maps, fixed-width integers, floats by their
//! bits) and hashes it with BLAKE3.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Bumped when the key encoding or the output byte format (e.g. Parquet writer settings) changes.
pub const KEY_FORMAT_VERSION: u32 = 1;

/// The code digest: BLAKE3 of every file under `src/` and of `Cargo.lock`, computed by
/// `build.rs` when the binary is built. It is part of every key, so results computed by one
/// build are never served to a build of different code, even when a kind's `VERSION` was not
/// bumped. It does not cover the Rust toolchain or the platform.
pub const CODE_DIGEST: Digest = Digest(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/code_digest.bin"
)));

/// A BLAKE3 hash, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }
}

impl From<blake3::Hash> for Digest {
    fn from(h: blake3::Hash) -> Self {
        Self(*h.as_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..12])
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// Everything a stage's result depends on. Inputs are keyed by the content digest of the bytes
/// the stage reads, never by the key of the stage that produced them, so an upstream rerun that
/// writes identical bytes leaves this key unchanged (early cutoff).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheKey {
    pub format: u32,
    pub kind: String,
    pub version: u32,
    /// Parameters after deserialisation, defaults filled in.
    pub params: serde_json::Value,
    /// `port:<name>` → digest of the upstream output; `source:<name>` → digest of the file.
    pub inputs: BTreeMap<String, Digest>,
    /// The code that computes it ([`CODE_DIGEST`] of the build that made the key). Keys saved
    /// before keys knew their code read as all zeros.
    #[serde(default = "no_code")]
    pub code: Digest,
}

fn no_code() -> Digest {
    Digest([0; 32])
}

impl CacheKey {
    /// The digest that names the entry: everything in the key, code included.
    pub fn digest(&self) -> Digest {
        let mut h = blake3::Hasher::new();
        h.update(b"pipeline-cache-key-with-code");
        h.update(&self.digest_without_code().0);
        h.update(&self.code.0);
        h.finalize().into()
    }

    /// The digest of every field but the code: what a kind's `VERSION` answers for. The golden
    /// tests pin it to output digests, so a change in output for the same inputs, parameters
    /// and `VERSION` is caught, while any edit of the code (which changes [`CacheKey::digest`])
    /// leaves the pins alone.
    pub fn digest_without_code(&self) -> Digest {
        let mut h = blake3::Hasher::new();
        h.update(b"pipeline-cache-key");
        h.update(&self.format.to_le_bytes());
        write_str(&mut h, &self.kind);
        h.update(&self.version.to_le_bytes());
        write_value(&mut h, &self.params);
        h.update(&(self.inputs.len() as u64).to_le_bytes());
        for (name, digest) in &self.inputs {
            write_str(&mut h, name);
            h.update(&digest.0);
        }
        h.finalize().into()
    }
}

fn write_str(h: &mut blake3::Hasher, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// Canonical encoding of a JSON value: a type tag, then the value; maps in sorted key order
/// whatever order they were built in; integers as fixed-width; floats by their IEEE bits.
fn write_value(h: &mut blake3::Hasher, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => {
            h.update(b"n");
        }
        Value::Bool(b) => {
            h.update(if *b { b"t" } else { b"f" });
        }
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                h.update(b"i");
                h.update(&i.to_le_bytes());
            } else if let Some(u) = n.as_u64() {
                h.update(b"u");
                h.update(&u.to_le_bytes());
            } else {
                h.update(b"d");
                h.update(&n.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => {
            h.update(b"s");
            write_str(h, s);
        }
        Value::Array(items) => {
            h.update(b"a");
            h.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_value(h, item);
            }
        }
        Value::Object(map) => {
            h.update(b"o");
            h.update(&(map.len() as u64).to_le_bytes());
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                write_str(h, k);
                write_value(h, &map[k]);
            }
        }
    }
}

/// One difference between two keys of the same stage, for `pipeline explain`.
pub fn differences(old: &CacheKey, new: &CacheKey) -> Vec<String> {
    let mut out = Vec::new();
    if old.format != new.format {
        out.push(format!("key format {} → {}", old.format, new.format));
    }
    if old.kind != new.kind {
        out.push(format!("kind `{}` → `{}`", old.kind, new.kind));
    }
    if old.version != new.version {
        out.push(format!(
            "code version of `{}`: {} → {}",
            new.kind, old.version, new.version
        ));
    }
    if old.code != new.code {
        out.push(format!(
            "code: {} → {} (a different build of pipeline)",
            &old.code.to_hex()[..12],
            &new.code.to_hex()[..12]
        ));
    }
    diff_values("", &old.params, &new.params, &mut out);
    for (name, d) in &new.inputs {
        match old.inputs.get(name) {
            None => out.push(format!("input {name}: new ({})", &d.to_hex()[..12])),
            Some(o) if o != d => out.push(format!(
                "input {name}: content changed ({} → {})",
                &o.to_hex()[..12],
                &d.to_hex()[..12]
            )),
            Some(_) => {}
        }
    }
    for name in old.inputs.keys() {
        if !new.inputs.contains_key(name) {
            out.push(format!("input {name}: removed"));
        }
    }
    out
}

fn diff_values(
    path: &str,
    old: &serde_json::Value,
    new: &serde_json::Value,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(&p, x, y, out),
                    (None, Some(y)) => out.push(format!("parameter {p}: (unset) → {y}")),
                    (Some(x), None) => out.push(format!("parameter {p}: {x} → (unset)")),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => out.push(format!(
            "parameter {}: {a} → {b}",
            if path.is_empty() { "(all)" } else { path }
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(params: serde_json::Value) -> CacheKey {
        CacheKey {
            format: 1,
            kind: "k".into(),
            version: 1,
            params,
            inputs: BTreeMap::new(),
            code: CODE_DIGEST,
        }
    }

    #[test]
    fn the_code_changes_the_key_but_not_the_key_without_code() {
        let a = key(json!({"k": 1}));
        let mut b = a.clone();
        b.code = Digest::of(b"other build");
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest_without_code(), b.digest_without_code());
        assert_eq!(
            differences(&b, &a),
            vec![format!(
                "code: {} → {} (a different build of pipeline)",
                &b.code.to_hex()[..12],
                &CODE_DIGEST.to_hex()[..12]
            )]
        );
        // The build script digested real sources, not nothing.
        assert_ne!(CODE_DIGEST, Digest([0; 32]));
        assert_ne!(CODE_DIGEST, Digest::of(b""));
    }

    /// Keys without code hash exactly as keys hashed before the code joined them (the encoding
    /// spelt out here by hand), so output pins taken then stay valid.
    #[test]
    fn the_key_without_code_keeps_the_earlier_encoding() {
        let k = key(json!({"a": 1}));
        let mut h = blake3::Hasher::new();
        h.update(b"pipeline-cache-key");
        h.update(&1u32.to_le_bytes());
        h.update(&1u64.to_le_bytes());
        h.update(b"k");
        h.update(&1u32.to_le_bytes());
        h.update(b"o");
        h.update(&1u64.to_le_bytes());
        h.update(&1u64.to_le_bytes());
        h.update(b"a");
        h.update(b"i");
        h.update(&1i64.to_le_bytes());
        h.update(&0u64.to_le_bytes());
        assert_eq!(k.digest_without_code(), Digest::from(h.finalize()));
    }

    #[test]
    fn map_order_does_not_matter_but_values_and_types_do() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(key(a.clone()).digest(), key(b).digest());
        assert_ne!(
            key(json!({"a": 1})).digest(),
            key(json!({"a": 1.0})).digest()
        );
        assert_ne!(
            key(json!({"a": "1"})).digest(),
            key(json!({"a": 1})).digest()
        );
        assert_ne!(
            key(json!(["ab", "c"])).digest(),
            key(json!(["a", "bc"])).digest()
        );
        let mut with_input = key(a);
        with_input.inputs.insert("port:x".into(), Digest::of(b"x"));
        assert_ne!(with_input.digest(), key(json!({"a":1,"b":2})).digest());
    }

    #[test]
    fn differences_name_the_parameter() {
        let d = differences(
            &key(json!({"k": 5, "m": {"x": 1}})),
            &key(json!({"k": 6, "m": {"x": 1}})),
        );
        assert_eq!(d, vec!["parameter k: 5 → 6"]);
        assert_eq!(
            Digest::from_hex(&Digest::of(b"").to_hex()),
            Some(Digest::of(b""))
        );
    }
}
