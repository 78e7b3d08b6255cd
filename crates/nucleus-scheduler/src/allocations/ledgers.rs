//! A worker's copy of the ledger: node documents by key, indexed by the protons they hold, so that
//! finding a proton's reservation (every proton, every pass) does not read the whole ledger.

use std::collections::{BTreeMap, BTreeSet, HashMap, btree_map};

use nucleus_client::{Versioned, keys};

use super::record::NodeAllocations;

type Doc = Versioned<NodeAllocations>;

#[derive(Debug, Clone, Default)]
pub struct Ledgers {
    docs: BTreeMap<String, Doc>,
    /// proton id → keys of the node documents with a record of it.
    by_proton: HashMap<String, BTreeSet<String>>,
}

impl Ledgers {
    pub fn new() -> Ledgers {
        Ledgers::default()
    }

    pub fn get(&self, key: &str) -> Option<&Doc> {
        self.docs.get(key)
    }

    pub fn insert(&mut self, doc: Doc) {
        self.remove(&doc.key);
        for record in &doc.value.allocations {
            self.by_proton.entry(record.proton.clone()).or_default().insert(doc.key.clone());
        }
        self.docs.insert(doc.key.clone(), doc);
    }

    pub fn remove(&mut self, key: &str) {
        let Some(old) = self.docs.remove(key) else { return };
        for record in &old.value.allocations {
            if let Some(keys) = self.by_proton.get_mut(&record.proton) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_proton.remove(&record.proton);
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.docs.clear();
        self.by_proton.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    pub fn iter(&self) -> btree_map::Iter<'_, String, Doc> {
        self.docs.iter()
    }

    pub fn values(&self) -> btree_map::Values<'_, String, Doc> {
        self.docs.values()
    }

    /// The documents of one agent's nodes.
    pub fn of_agent<'a>(&'a self, agent: &str) -> impl Iterator<Item = &'a Doc> + 'a {
        let prefix = format!("{}{agent}/", keys::ALLOCATIONS);
        self.docs.range(prefix.clone()..).take_while(move |(k, _)| k.starts_with(&prefix)).map(|(_, d)| d)
    }

    /// The documents with a record of `proton`, in key order.
    pub fn holding<'a>(&'a self, proton: &str) -> impl Iterator<Item = &'a Doc> + 'a {
        self.by_proton.get(proton).into_iter().flatten().filter_map(|key| self.docs.get(key))
    }
}

impl FromIterator<(String, Doc)> for Ledgers {
    fn from_iter<I: IntoIterator<Item = (String, Doc)>>(docs: I) -> Ledgers {
        let mut ledgers = Ledgers::new();
        for (_, doc) in docs {
            ledgers.insert(doc);
        }
        ledgers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocations::record::AllocationRecord;

    fn doc(key: &str, protons: &[&str], revision: u64) -> Doc {
        let allocations = protons
            .iter()
            .map(|p| AllocationRecord {
                proton: (*p).into(),
                workload: "w".into(),
                replica: 0,
                bundle: nucleus_api::bundle::default_catalogue()[0].clone(),
                importance: nucleus_api::Importance::Low,
                preempted_by: None,
            })
            .collect();
        Versioned { key: key.into(), value: NodeAllocations { agent: "a".into(), node: key.into(), allocations }, mod_revision: revision }
    }

    #[test]
    fn the_index_follows_inserts_rewrites_and_removals() {
        let mut ledgers = Ledgers::new();
        ledgers.insert(doc("allocations/a/n1", &["p", "q"], 1));
        ledgers.insert(doc("allocations/a/n2", &["p"], 1));
        let keys_of = |l: &Ledgers, p: &str| l.holding(p).map(|d| d.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys_of(&ledgers, "p"), ["allocations/a/n1", "allocations/a/n2"]);
        ledgers.insert(doc("allocations/a/n1", &["q"], 2));
        assert_eq!(keys_of(&ledgers, "p"), ["allocations/a/n2"], "a rewritten document no longer holds p");
        ledgers.remove("allocations/a/n2");
        assert!(keys_of(&ledgers, "p").is_empty());
        assert_eq!(keys_of(&ledgers, "q"), ["allocations/a/n1"]);
        assert_eq!(ledgers.of_agent("a").count(), 1);
        assert_eq!(ledgers.of_agent("b").count(), 0);
        ledgers.clear();
        assert!(keys_of(&ledgers, "q").is_empty() && ledgers.is_empty());
    }
}
