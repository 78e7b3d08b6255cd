//! The event list the search walks: call and return events sorted by time, in a doubly linked
//! list from which an operation's events can be removed and then restored in LIFO order
//! ("dancing links").

/// A position in the list: a node index.
pub(crate) type Node = usize;

/// The sentinel before the first event.
const HEAD: Node = 0;
/// The end of the list.
const NIL: Node = usize::MAX;

/// The event at a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Operation `op` is called; `ret` is the node of its return, `None` if it never returns.
    Call { op: usize, ret: Option<Node> },
    /// Operation `op` returns.
    Return { op: usize },
}

/// The events of one key's operations, sorted by time.
#[derive(Debug)]
pub(crate) struct EventList {
    /// Indexed by node; the sentinel at [`HEAD`] has no event.
    events: Vec<Option<Event>>,
    prev: Vec<Node>,
    next: Vec<Node>,
}

impl EventList {
    /// Builds the list for operations with the given `(call, return)` times; a `None` return
    /// time is +infinity and gets no return event. Calls come before returns at equal times, so
    /// that operations touching at an instant count as concurrent.
    pub(crate) fn new(times: &[(u64, Option<u64>)]) -> Self {
        // (time, 0 = call / 1 = return, op)
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(times.len() * 2);
        for (op, &(call, ret)) in times.iter().enumerate() {
            order.push((call, 0, op));
            if let Some(ret) = ret {
                order.push((ret, 1, op));
            }
        }
        order.sort_unstable();

        let mut ret_node = vec![None; times.len()];
        for (i, &(_, kind, op)) in order.iter().enumerate() {
            if kind == 1 {
                ret_node[op] = Some(i + 1);
            }
        }
        let events = std::iter::once(None)
            .chain(
                order
                    .iter()
                    .map(|&(_, kind, op)| Some(if kind == 0 { Event::Call { op, ret: ret_node[op] } } else { Event::Return { op } })),
            )
            .collect::<Vec<_>>();
        let len = events.len();
        let prev = (0..len).map(|n| n.checked_sub(1).unwrap_or(NIL)).collect();
        let next = (0..len).map(|n| if n + 1 < len { n + 1 } else { NIL }).collect();
        EventList { events, prev, next }
    }

    /// The first node of the list.
    pub(crate) fn first(&self) -> Node {
        self.next[HEAD]
    }

    /// The node after `node`.
    pub(crate) fn next(&self, node: Node) -> Node {
        self.next[node]
    }

    /// The event at `node`, `None` at the end of the list.
    pub(crate) fn event(&self, node: Node) -> Option<Event> {
        self.events.get(node).copied().flatten()
    }

    /// Removes the call event at `call` and its return event, if any.
    pub(crate) fn lift(&mut self, call: Node) {
        self.unlink(call);
        if let Some(Event::Call { ret: Some(ret), .. }) = self.event(call) {
            self.unlink(ret);
        }
    }

    /// Restores what the matching [`EventList::lift`] removed; lifts must be undone in reverse
    /// order.
    pub(crate) fn unlift(&mut self, call: Node) {
        if let Some(Event::Call { ret: Some(ret), .. }) = self.event(call) {
            self.relink(ret);
        }
        self.relink(call);
    }

    fn unlink(&mut self, node: Node) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, node: Node) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        if next != NIL {
            self.prev[next] = node;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(list: &EventList) -> Vec<Event> {
        let mut out = Vec::new();
        let mut node = list.first();
        while let Some(event) = list.event(node) {
            out.push(event);
            node = list.next(node);
        }
        out
    }

    #[test]
    fn sorts_by_time_with_calls_first_and_lifts_in_lifo_order() {
        // op 0: [0, 5], op 1: [5, 9], op 2: [3, never]
        let mut list = EventList::new(&[(0, Some(5)), (5, Some(9)), (3, None)]);
        let before = walk(&list);
        let ops: Vec<_> = before
            .iter()
            .map(|e| match *e {
                Event::Call { op, .. } => (op, 'c'),
                Event::Return { op } => (op, 'r'),
            })
            .collect();
        assert_eq!(ops, [(0, 'c'), (2, 'c'), (1, 'c'), (0, 'r'), (1, 'r')]);

        let call0 = list.first();
        list.lift(call0);
        let call2 = list.first();
        list.lift(call2);
        assert_eq!(walk(&list).len(), 2);
        list.unlift(call2);
        list.unlift(call0);
        assert_eq!(walk(&list), before);
    }
}
