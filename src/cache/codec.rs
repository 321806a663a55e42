//! The cache value codec: one version byte, then bitcode. Never JSON for bars.
//!
//! A value written by another codec version, truncated or corrupt fails to decode; the
//! caller counts it and treats it as a miss.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bumped whenever the encoding of any cached type changes.
pub const CODEC_VERSION: u8 = 2;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error("codec version {found}, expected {CODEC_VERSION}")]
    Version { found: u8 },
    #[error("cannot decode: {0}")]
    Corrupt(String),
    #[error("cannot encode: {0}")]
    Encode(String),
}

pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let body = bitcode::serialize(value).map_err(|e| CodecError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(CODEC_VERSION);
    out.extend_from_slice(&body);
    Ok(out)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&CODEC_VERSION, body)) => {
            bitcode::deserialize(body).map_err(|e| CodecError::Corrupt(e.to_string()))
        }
        Some((&found, _)) => Err(CodecError::Version { found }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::Bars;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bars_round_trip(rows in proptest::collection::vec((1.0f64..1e4, 0.0f64..1e9), 0..300)) {
            let mut b = Bars::default();
            let d0 = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).expect("date");
            for (i, (p, v)) in rows.iter().enumerate() {
                b.push(d0 + chrono::Days::new(i as u64), *p, p * 1.01, p * 0.99, *p, *v);
            }
            let bytes = encode(&b).expect("encodes");
            prop_assert_eq!(bytes[0], CODEC_VERSION);
            prop_assert_eq!(decode::<Bars>(&bytes).expect("decodes"), b);
        }
    }

    #[test]
    fn corrupt_and_foreign_values_fail_to_decode() {
        let bytes = encode(&vec![1.0f64, 2.0]).expect("encodes");
        assert_eq!(decode::<Vec<f64>>(&[]), Err(CodecError::Empty));
        let mut other = bytes.clone();
        other[0] = 99;
        assert_eq!(
            decode::<Vec<f64>>(&other),
            Err(CodecError::Version { found: 99 })
        );
        assert!(matches!(
            decode::<Vec<f64>>(&bytes[..bytes.len() - 3]),
            Err(CodecError::Corrupt(_))
        ));
        assert!(matches!(
            decode::<Bars>(&[CODEC_VERSION, b'g', b'a', b'r', b'b']),
            Err(CodecError::Corrupt(_))
        ));
    }
}
