use serde::Serialize;

/// The pagination envelope of every list endpoint.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub count: usize,
    pub total_count: usize,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub data: Vec<T>,
}

/// Offsets of the neighbouring pages, if any, for a window `offset..offset+limit` of `total` items.
pub fn neighbours(offset: usize, limit: usize, total: usize) -> (Option<usize>, Option<usize>) {
    let next = (offset + limit < total).then_some(offset + limit);
    let previous = (offset > 0).then(|| offset.saturating_sub(limit));
    (next, previous)
}

#[cfg(test)]
mod tests {
    use super::neighbours;

    #[test]
    fn neighbours_at_edges() {
        assert_eq!(neighbours(0, 10, 5), (None, None));
        assert_eq!(neighbours(0, 10, 25), (Some(10), None));
        assert_eq!(neighbours(10, 10, 25), (Some(20), Some(0)));
        assert_eq!(neighbours(20, 10, 25), (None, Some(10)));
        assert_eq!(neighbours(5, 10, 25), (Some(15), Some(0)));
    }
}
