//! A process named so that a recycled pid is never mistaken for it: its pid and its start time
//! (field 22 of /proc/<pid>/stat, in clock ticks since boot), as read from /proc.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessId {
    /// Also the id of its process group: replicas lead their own group.
    pub pid: u32,
    pub start_time: u64,
}

impl ProcessId {
    /// The process that has `pid` now, if there is one.
    pub(crate) fn of(pid: u32) -> Option<ProcessId> {
        let stat = Stat::read(pid)?;
        Some(ProcessId { pid, start_time: stat.start_time })
    }

    /// Whether this very process still runs (a zombie, or another process that was given the
    /// same pid, does not count).
    pub(crate) fn is_running(&self) -> bool {
        Stat::read(self.pid).is_some_and(|stat| stat.start_time == self.start_time && stat.state != 'Z')
    }

    /// Whether signalling the process group `pid` can only reach what this process left: true
    /// unless another process now has the pid (which it can only have been given once the
    /// group was empty).
    pub(crate) fn owns_its_group(&self) -> bool {
        Stat::read(self.pid).is_none_or(|stat| stat.start_time == self.start_time)
    }
}

struct Stat {
    state: char,
    start_time: u64,
}

impl Stat {
    fn read(pid: u32) -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// `pid (comm) state ppid …`: the command may hold spaces and parentheses, so the fields are
    /// counted after its last ')'; state is field 3 and starttime field 22.
    fn parse(stat: &str) -> Option<Stat> {
        let (_, rest) = stat.rsplit_once(')')?;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let start_time = fields.nth(22 - 4)?.parse().ok()?;
        Some(Stat { state, start_time })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                    1000 10 18446744073709551615";
        let stat = Stat::parse(line).expect("parses");
        assert_eq!((stat.state, stat.start_time), ('S', 987_654));
        assert!(Stat::parse("4242 (truncated) S 1").is_none());
    }

    #[test]
    fn a_pid_with_another_start_time_is_not_the_same_process() {
        let me = ProcessId::of(std::process::id()).expect("this process is in /proc");
        assert!(me.is_running());
        assert!(me.owns_its_group());
        let recycled = ProcessId { start_time: me.start_time + 1, ..me };
        assert!(!recycled.is_running());
        assert!(!recycled.owns_its_group());
    }

    #[test]
    fn an_exited_process_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let id = ProcessId::of(child.id()).expect("the child is in /proc until it is reaped");
        child.wait().expect("wait");
        assert!(!id.is_running());
    }
}
