//! Byte encodings of what is stored in RocksDB.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::types::KeyValue;

/// Stored value of a user key: create_revision (8 bytes BE), mod_revision (8 bytes BE), value.
pub(crate) fn encode_kv(value: &[u8], create_revision: u64, mod_revision: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create_revision.to_be_bytes());
    out.extend_from_slice(&mod_revision.to_be_bytes());
    out.extend_from_slice(value);
    out
}

pub(crate) fn decode_kv(key: &[u8], raw: &[u8]) -> Result<KeyValue, Error> {
    let key = std::str::from_utf8(key).map_err(|e| Error::corrupt("kv", format!("key is not utf-8: {e}")))?;
    if raw.len() < 16 {
        return Err(Error::corrupt("kv", format!("value of {key:?} is {} bytes, shorter than its header", raw.len())));
    }
    let (create, rest) = raw.split_at(8);
    let (modr, value) = rest.split_at(8);
    Ok(KeyValue {
        key: key.to_owned(),
        value: value.to_vec(),
        create_revision: be_u64("kv create revision", create)?,
        mod_revision: be_u64("kv mod revision", modr)?,
    })
}

pub(crate) fn be_u64(what: &'static str, raw: &[u8]) -> Result<u64, Error> {
    let arr: [u8; 8] = raw.try_into().map_err(|_| Error::corrupt(what, format!("expected 8 bytes, got {}", raw.len())))?;
    Ok(u64::from_be_bytes(arr))
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(v)
}

pub(crate) fn from_json<T: DeserializeOwned>(raw: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(raw)
}
