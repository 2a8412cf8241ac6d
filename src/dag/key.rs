//! Content keys: the blake3 hash that names every artifact.

use std::fmt;

/// A 32-byte blake3 hash naming an artifact or an input file's content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    pub fn of_bytes(bytes: &[u8]) -> Key {
        Key(*blake3::hash(bytes).as_bytes())
    }

    pub fn hex(&self) -> String {
        self.to_string()
    }

    /// The first 12 hex digits: enough to tell artifacts apart in messages.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_string()
    }

    pub fn from_hex(s: &str) -> Option<Key> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Key(out))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write of 64 digits: a no-op run formats two keys per artifact name.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 15)];
        }
        f.write_str(std::str::from_utf8(&out).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.short())
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Key::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a 64-digit hex key: {s}")))
    }
}

/// Builds a node key from exactly what determines the artifact: stage name,
/// code version, canonical params, the content hashes of its inputs (in
/// order) and, for a partial node, the inputs it went without and why.
/// Fields are length-prefixed so no two different tuples hash alike.
pub fn node_key(
    stage: &str,
    version: u32,
    params_json: &str,
    inputs: &[(String, Key)],
    missing: &[(String, String)],
) -> Key {
    let mut h = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    // v2: inputs are content hashes (v1 hashed upstream node keys).
    field(b"pipe-node-v2");
    field(stage.as_bytes());
    field(&version.to_le_bytes());
    field(params_json.as_bytes());
    for (name, key) in inputs {
        field(name.as_bytes());
        field(&key.0);
    }
    for (name, reason) in missing {
        field(b"missing");
        field(name.as_bytes());
        field(reason.as_bytes());
    }
    Key(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let k = Key::of_bytes(b"abc");
        assert_eq!(Key::from_hex(&k.hex()), Some(k));
        // blake3("abc"), from the reference implementation's test vectors.
        assert_eq!(
            k.hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(Key::from_hex("zz"), None);
    }

    #[test]
    fn node_key_depends_on_every_field() {
        let a = Key::of_bytes(b"a");
        let base = node_key(
            "resample",
            1,
            r#"{"q":"high"}"#,
            &[("decode".into(), a)],
            &[],
        );
        assert_ne!(
            base,
            node_key(
                "resamplf",
                1,
                r#"{"q":"high"}"#,
                &[("decode".into(), a)],
                &[]
            )
        );
        assert_ne!(
            base,
            node_key(
                "resample",
                2,
                r#"{"q":"high"}"#,
                &[("decode".into(), a)],
                &[]
            )
        );
        assert_ne!(
            base,
            node_key(
                "resample",
                1,
                r#"{"q":"fast"}"#,
                &[("decode".into(), a)],
                &[]
            )
        );
        assert_ne!(
            base,
            node_key(
                "resample",
                1,
                r#"{"q":"high"}"#,
                &[("decodf".into(), a)],
                &[]
            )
        );
        let b = Key::of_bytes(b"b");
        assert_ne!(
            base,
            node_key(
                "resample",
                1,
                r#"{"q":"high"}"#,
                &[("decode".into(), b)],
                &[]
            )
        );
        assert_eq!(
            base,
            node_key(
                "resample",
                1,
                r#"{"q":"high"}"#,
                &[("decode".into(), a)],
                &[]
            )
        );
        // A missing input (and its reason) is part of what a partial node read.
        let m = |r: &str| node_key("resample", 1, "{}", &[], &[("c1".into(), r.into())]);
        assert_ne!(m("bad header"), m("too short"));
        assert_ne!(m("x"), node_key("resample", 1, "{}", &[], &[]));
        // Length prefixes: moving a byte between fields changes the key.
        assert_ne!(
            node_key("ab", 1, "c", &[], &[]),
            node_key("a", 1, "bc", &[], &[])
        );
    }
}
