//! Filtering, ordering and pagination shared by the list endpoints.

use std::cmp::Ordering;

use axum::http::{HeaderMap, Uri};
use nucleus_api::page::{neighbours, Page};
use nucleus_api::validation::Loc;
use nucleus_api::{FieldError, Timestamp};

use crate::request::{base_url, Query};
use crate::{ApiError, AppState};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 100;

/// `offset`/`limit` of a list request, validated.
pub struct Window {
    pub offset: usize,
    pub limit: usize,
}

impl Window {
    pub fn from_query(query: &Query, errors: &mut Vec<FieldError>) -> Window {
        let offset = query.int("offset", 0, 0, usize::MAX >> 1, errors);
        let limit = query.int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT, errors);
        Window { offset, limit }
    }
}

/// What every listed resource can be ordered by: `name`, `createdAt` and `updatedAt`.
pub trait Listed {
    fn name(&self) -> &str;
    fn created_at(&self) -> Timestamp;
    fn updated_at(&self) -> Timestamp;
}

impl Listed for nucleus_api::Artifact {
    fn name(&self) -> &str {
        &self.name
    }
    fn created_at(&self) -> Timestamp {
        self.created_at
    }
    fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
}

impl Listed for nucleus_api::Workload {
    fn name(&self) -> &str {
        &self.name
    }
    fn created_at(&self) -> Timestamp {
        self.created_at
    }
    fn updated_at(&self) -> Timestamp {
        self.updated_at
    }
}

/// Sorts by `orderBy` (`field` or `-field`; newest first by default): the common fields of
/// [`Listed`], then whatever `extra` knows (returning `None` for names it does not know).
pub fn order<T: Listed>(
    items: &mut [T],
    query: &Query,
    extra: impl Fn(&str, &T, &T) -> Option<Ordering>,
    errors: &mut Vec<FieldError>,
) {
    let key = |field: &str, a: &T, b: &T| match field {
        "name" => Some(a.name().cmp(b.name())),
        "createdAt" => Some(a.created_at().cmp(&b.created_at())),
        "updatedAt" => Some(a.updated_at().cmp(&b.updated_at())),
        other => extra(other, a, b),
    };
    let spec = query.one("orderBy").unwrap_or("-createdAt");
    let (field, descending) = match spec.strip_prefix('-') {
        Some(field) => (field, true),
        None => (spec, false),
    };
    if items.len() >= 2 && key(field, &items[0], &items[1]).is_none() {
        errors.push(FieldError::new(
            &Loc::query().key("orderBy"),
            format!("Cannot order by '{field}'"),
            "value_error",
        ));
        return;
    }
    items.sort_by(|a, b| {
        let ord = key(field, a, b).unwrap_or(Ordering::Equal);
        if descending { ord.reverse() } else { ord }
    });
}

/// Cuts one page out of `items` and builds absolute `next`/`previous` links.
pub fn paginate<T>(items: Vec<T>, window: &Window, query: &Query, state: &AppState, headers: &HeaderMap, uri: &Uri) -> Page<T> {
    let total = items.len();
    let data: Vec<T> = items.into_iter().skip(window.offset).take(window.limit).collect();
    let (next, previous) = neighbours(window.offset, window.limit, total);
    let link = |offset: usize| format!("{}{}?{}", base_url(state, headers), uri.path(), query.with_offset(offset));
    Page { count: data.len(), total_count: total, next: next.map(link), previous: previous.map(link), data }
}

pub fn check(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(errors)) }
}
