//! Ids look like the spec's examples (24 hex digits, Mongo ObjectId-like): 8 digits of seconds
//! since the epoch, then 16 random ones, so that they sort roughly by creation time.

pub fn new_id() -> String {
    let secs = nucleus_api::clock::now().timestamp().max(0) as u64 as u32;
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    format!("{secs:08x}{random:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_24_hex_and_distinct() {
        let (a, b) = (super::new_id(), super::new_id());
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
