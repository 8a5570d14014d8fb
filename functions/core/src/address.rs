//! EVM addresses with EIP-55 checksum validation.
//!
//! The core keeps its own small address type so that it depends on no chain library; adapters
//! convert it with `as_bytes()`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest, Keccak256};

/// A 20-byte EVM account address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EvmAddress([u8; 20]);

/// Why a string is not an acceptable recipient address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not `0x` followed by 40 hexadecimal digits.
    #[error("`{0}` is not an address: expected 0x followed by 40 hex digits")]
    Malformed(String),
    /// Mixed case that does not match the EIP-55 checksum (a typo, most likely).
    #[error("`{given}` fails its EIP-55 checksum (a typo?); the checksummed form of these digits is {expected}")]
    BadChecksum {
        /// The address as given.
        given: String,
        /// The correctly checksummed spelling of the same digits.
        expected: String,
    },
    /// All lower or all upper case: carries no checksum, so a typo would go unnoticed.
    #[error("`{given}` has no EIP-55 checksum (all one case); write it as {expected}")]
    NotChecksummed {
        /// The address as given.
        given: String,
        /// The checksummed spelling.
        expected: String,
    },
    /// The zero address burns whatever is sent to it.
    #[error("the zero address cannot receive tokens")]
    Zero,
}

impl EvmAddress {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The raw 20 bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Parses an address and insists on a correct EIP-55 checksum, as wallets do for
    /// user-typed recipients. The zero address is refused.
    pub fn parse_checksummed(s: &str) -> Result<Self, AddressError> {
        let addr = Self::parse_any_case(s)?;
        let digits = &s.trim()[2..];
        let expected = addr.to_checksum();
        if digits == &expected[2..] {
        } else if digits.chars().all(|c| !c.is_ascii_uppercase()) || digits.chars().all(|c| !c.is_ascii_lowercase()) {
            return Err(AddressError::NotChecksummed { given: s.to_string(), expected });
        } else {
            return Err(AddressError::BadChecksum { given: s.to_string(), expected });
        }
        if addr.0 == [0u8; 20] {
            return Err(AddressError::Zero);
        }
        Ok(addr)
    }

    /// Parses `0x` + 40 hex digits, ignoring case (for addresses read back from a chain or
    /// from our own files, where no human typed them).
    pub fn parse_any_case(s: &str) -> Result<Self, AddressError> {
        let t = s.trim();
        let digits = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .filter(|d| d.len() == 40)
            .ok_or_else(|| AddressError::Malformed(s.to_string()))?;
        let mut out = [0u8; 20];
        hex::decode_to_slice(digits, &mut out).map_err(|_| AddressError::Malformed(s.to_string()))?;
        Ok(Self(out))
    }

    /// The EIP-55 mixed-case spelling.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = Keccak256::digest(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl fmt::Display for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for EvmAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EvmAddress({})", self.to_checksum())
    }
}

impl FromStr for EvmAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_any_case(s)
    }
}

impl Serialize for EvmAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_checksum())
    }
}

impl<'de> Deserialize<'de> for EvmAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_any_case(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from the EIP-55 specification.
    const EIP55: [&str; 4] = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn eip55_vectors_round_trip() {
        for v in EIP55 {
            let a = EvmAddress::parse_checksummed(v).unwrap();
            assert_eq!(a.to_checksum(), v);
        }
    }

    #[test]
    fn wrong_checksum_is_refused_with_the_right_spelling() {
        let bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        match EvmAddress::parse_checksummed(bad) {
            Err(AddressError::BadChecksum { expected, .. }) => assert_eq!(expected, EIP55[0]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lowercase_is_refused_as_not_checksummed() {
        let lower = EIP55[0].to_lowercase();
        assert!(matches!(EvmAddress::parse_checksummed(&lower), Err(AddressError::NotChecksummed { .. })));
        assert!(EvmAddress::parse_any_case(&lower).is_ok());
    }

    #[test]
    fn malformed_and_zero() {
        for s in [
            "",
            "0x",
            "0x1234",
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xZZAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ] {
            assert!(matches!(EvmAddress::parse_checksummed(s), Err(AddressError::Malformed(_))), "{s}");
        }
        assert!(matches!(
            EvmAddress::parse_checksummed("0x0000000000000000000000000000000000000000"),
            Err(AddressError::NotChecksummed { .. }) | Err(AddressError::Zero)
        ));
    }
}
