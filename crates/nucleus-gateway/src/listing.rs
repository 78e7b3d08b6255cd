//! Filtering, ordering and pagination shared by the list endpoints.

use std::cmp::Ordering;

use axum::http::Uri;
use nucleus_api::page::{Page, neighbours};
use nucleus_api::validation::Loc;
use nucleus_api::{FieldError, Timestamp, UserData};

use crate::request::{Query, base_url};
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

/// What every listed resource can be filtered and ordered by.
pub trait Listed {
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn created_at(&self) -> Timestamp;
    fn updated_at(&self) -> Timestamp;
    fn creator(&self) -> Option<&UserData>;
    fn tags(&self) -> &[nucleus_api::container_options::TagInfo];
}

macro_rules! listed {
    ($type:ty) => {
        impl Listed for $type {
            fn id(&self) -> &str {
                &self.id
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn created_at(&self) -> nucleus_api::Timestamp {
                self.created_at
            }
            fn updated_at(&self) -> nucleus_api::Timestamp {
                self.updated_at
            }
            fn creator(&self) -> Option<&nucleus_api::UserData> {
                self.creator.as_ref()
            }
            fn tags(&self) -> &[nucleus_api::container_options::TagInfo] {
                &self.tags
            }
        }
    };
}
pub(crate) use listed;

listed!(nucleus_api::Artifact);
listed!(nucleus_api::Workload);

/// The filters every list endpoint takes: `createdBy` (user id or username), `ids[]`, and
/// `tagKeys[]`/`tagValues[]` (an item matches when one of its tags has one of the names, and one
/// of the values).
pub struct CommonFilters {
    created_by: Option<String>,
    ids: Vec<String>,
    tag_keys: Vec<String>,
    tag_values: Vec<String>,
}

impl CommonFilters {
    pub fn from_query(query: &Query) -> CommonFilters {
        CommonFilters {
            created_by: query.one("createdBy").map(str::to_owned),
            ids: query.all("ids"),
            tag_keys: query.all("tagKeys"),
            tag_values: query.all("tagValues"),
        }
    }

    pub fn keep<T: Listed>(&self, item: &T) -> bool {
        let by = self
            .created_by
            .as_deref()
            .is_none_or(|wanted| item.creator().is_some_and(|c| c.id == wanted || c.username.as_deref() == Some(wanted)));
        let tag_has = |field: fn(&nucleus_api::container_options::TagInfo) -> &str, wanted: &[String]| {
            wanted.is_empty() || item.tags().iter().any(|t| wanted.iter().any(|w| w == field(t)))
        };
        by && (self.ids.is_empty() || self.ids.iter().any(|id| id == item.id()))
            && tag_has(|t| &t.name, &self.tag_keys)
            && tag_has(|t| &t.value, &self.tag_values)
    }
}

/// Sorts by `orderBy` (`field` or `-field`; newest first by default): the common fields of
/// [`Listed`], then the `extra` fields, which `extra_key` compares.
pub fn order<T: Listed>(
    items: &mut [T],
    query: &Query,
    extra: &[&str],
    extra_key: impl Fn(&str, &T, &T) -> Option<Ordering>,
    errors: &mut Vec<FieldError>,
) {
    let spec = query.one("orderBy").unwrap_or("-createdAt");
    let (field, descending) = match spec.strip_prefix('-') {
        Some(field) => (field, true),
        None => (spec, false),
    };
    let common = ["name", "createdAt", "updatedAt"];
    if !common.contains(&field) && !extra.contains(&field) {
        let known: Vec<&str> = common.iter().chain(extra).copied().collect();
        errors.push(FieldError::new(
            &Loc::query().key("orderBy"),
            format!("Cannot order by '{field}'; use one of {} (prefix '-' for descending)", known.join(", ")),
            "value_error",
        ));
        return;
    }
    let key = |a: &T, b: &T| match field {
        "name" => a.name().cmp(b.name()),
        "createdAt" => a.created_at().cmp(&b.created_at()),
        "updatedAt" => a.updated_at().cmp(&b.updated_at()),
        other => extra_key(other, a, b).unwrap_or(Ordering::Equal),
    };
    items.sort_by(|a, b| {
        let ord = key(a, b);
        if descending { ord.reverse() } else { ord }
    });
}

/// Cuts one page out of `items` and builds absolute `next`/`previous` links.
pub fn paginate<T>(items: Vec<T>, window: &Window, query: &Query, state: &AppState, uri: &Uri) -> Page<T> {
    let total = items.len();
    let data: Vec<T> = items.into_iter().skip(window.offset).take(window.limit).collect();
    let (next, previous) = neighbours(window.offset, window.limit, total);
    let link = |offset: usize| format!("{}{}?{}", base_url(state), uri.path(), query.with_offset(offset));
    Page { count: data.len(), total_count: total, next: next.map(link), previous: previous.map(link), data }
}

pub fn check(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(errors)) }
}
