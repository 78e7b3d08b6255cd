//! Byte strings in JSON as base64 text. serde_json writes a `Vec<u8>` as an array of numbers,
//! about four times the size and many times slower to encode; log entries, Raft messages and
//! snapshots all carry values, so they use this instead.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    STANDARD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Holder(#[serde(with = "super")] Vec<u8>);

    #[test]
    fn round_trips_as_text() {
        let holder = Holder(vec![0, 1, 2, 255, b'"']);
        let json = serde_json::to_string(&holder).unwrap();
        assert_eq!(json, "\"AAEC/yI=\"");
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), holder);
        assert!(serde_json::from_str::<Holder>("\"not base64!\"").is_err());
    }
}
