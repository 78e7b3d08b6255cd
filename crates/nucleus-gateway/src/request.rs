//! What handlers take from a request: the JSON body (400 vs 422), the query string (repeated keys
//! allowed), and the externally visible base URL.

use nucleus_api::FieldError;
use nucleus_api::validation::{Loc, parse_body};
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState};

pub fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    Ok(parse_body(bytes)?)
}

/// `scheme://host[:port]` callers reach the gateway at: the configured public URL, never the
/// request's `Host` header (which a caller controls).
pub fn base_url(state: &AppState) -> &str {
    state.config.public_url.trim_end_matches('/')
}

pub fn workload_endpoint(base: &str, workload_id: &str) -> String {
    format!("{base}/api/v2/endpoints/workloads/{workload_id}/")
}

/// A parsed query string; `key` and `key[]` are the same parameter.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.trim_end_matches("[]").to_owned(), v.into_owned()))
            .collect();
        Query { pairs }
    }

    pub fn one(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Repeated (`status=a&status=b`) and comma-separated values.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned))
            .collect()
    }

    /// Repeated values as given (commas are part of them).
    pub fn each(&self, key: &str) -> Vec<String> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    /// An integer parameter within `min..=max`; errors name the parameter.
    pub fn int(&self, key: &str, default: usize, min: usize, max: usize, errors: &mut Vec<FieldError>) -> usize {
        let Some(raw) = self.one(key) else { return default };
        let loc = Loc::query().key(key);
        match raw.parse::<i64>() {
            Ok(n) if n >= min as i64 && n <= max as i64 => n as usize,
            Ok(n) => {
                errors.push(FieldError::new(&loc, format!("Input should be between {min} and {max}, got {n}"), "out_of_range"));
                default
            }
            Err(_) => {
                errors.push(FieldError::new(&loc, format!("Input should be a valid integer, got '{raw}'"), "int_parsing"));
                default
            }
        }
    }

    /// The query string with `offset` replaced, for `next`/`previous` links.
    pub fn with_offset(&self, offset: usize) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.pairs.iter().filter(|(k, _)| k != "offset") {
            out.append_pair(k, v);
        }
        out.append_pair("offset", &offset.to_string());
        out.finish()
    }
}
