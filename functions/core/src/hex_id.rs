//! 32-byte identifiers written as 64 hex digits (job ids, batch ids): the `bytes32` keys the
//! contract guards, shown in full in files and JSON and by their first 8 digits in logs.

/// Defines a 32-byte id type `$name` (called `$what` in parse errors) with hex `Display`,
/// `FromStr` (an optional `0x`), serde as a hex string, `from_bytes`, `as_bytes` and `short`.
macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps raw bytes.
            pub const fn from_bytes(b: [u8; 32]) -> Self {
                Self(b)
            }

            /// Raw bytes (the contract's `bytes32` key).
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// First 8 hex digits, for tables and log lines.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.strip_prefix("0x").unwrap_or(s);
                let mut b = [0u8; 32];
                hex::decode_to_slice(s, &mut b).map_err(|_| format!("`{s}` is not a {} (64 hex digits)", $what))?;
                Ok(Self(b))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use hex_id;
