//! The one place where the node's errors become gRPC statuses: codes, and the metadata clients
//! act on (the leader to go to, the compacted revision to re-list from).

use nucleus_proto::metadata::{COMPACT_REVISION, LEADER_ADDR, LEADER_ID};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::Error;

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let message = error.to_string();
        match error {
            Error::Forward { leader_id, leader_addr } => {
                let mut status = Status::unavailable(message);
                if let Some(id) = leader_id {
                    status.metadata_mut().insert(LEADER_ID, MetadataValue::from(id));
                }
                if let Some(addr) = leader_addr {
                    match MetadataValue::try_from(addr.as_str()) {
                        Ok(value) => {
                            status.metadata_mut().insert(LEADER_ADDR, value);
                        }
                        Err(_) => tracing::warn!(%addr, "leader address is not valid metadata, answering without it"),
                    }
                }
                status
            }
            Error::Compacted { compacted, .. } => {
                let mut status = Status::out_of_range(message);
                status.metadata_mut().insert(COMPACT_REVISION, MetadataValue::from(compacted));
                status
            }
            other => Status::new(code(&other), message),
        }
    }
}

fn code(error: &Error) -> Code {
    match error {
        Error::GroupNotOpen { .. }
        | Error::RaftGroupNotOpen(_)
        | Error::Forward { .. }
        | Error::NoQuorum(_)
        | Error::RaftStopped(_)
        | Error::ElectionLost { .. }
        | Error::CatchUpTimeout { .. }
        | Error::MembershipBusy(_)
        | Error::ShuttingDown
        | Error::NoLeader(_)
        | Error::NotLeader(_) => Code::Unavailable,
        Error::InvalidRequest(_) => Code::InvalidArgument,
        Error::NotVoter { .. } | Error::MembershipRefused(_) => Code::FailedPrecondition,
        Error::Compacted { .. } => Code::OutOfRange,
        Error::SnapshotInstalled | Error::FellBehind => Code::DataLoss,
        Error::Io { .. }
        | Error::RocksDb(_)
        | Error::MissingColumnFamily(_)
        | Error::Corrupt { .. }
        | Error::Config(_)
        | Error::Raft(_)
        | Error::Bind { .. }
        | Error::Transport(_)
        | Error::Tls(_)
        | Error::Join { .. }
        | Error::Encoding(_)
        | Error::MemberWithoutAddress(_)
        | Error::PeerCall { .. } => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_hint_carries_id_and_addr_only_when_known() {
        let status = Status::from(Error::Forward { leader_id: Some(3), leader_addr: Some("127.0.0.1:7003".into()) });
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.metadata().get(LEADER_ID).unwrap(), "3");
        assert_eq!(status.metadata().get(LEADER_ADDR).unwrap(), "127.0.0.1:7003");
        assert_eq!(status.message(), "not the meta leader; leader is node 3 at 127.0.0.1:7003");

        let status = Status::from(Error::Forward { leader_id: None, leader_addr: None });
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.metadata().get(LEADER_ID).is_none());
        assert!(status.metadata().get(LEADER_ADDR).is_none());
    }

    #[test]
    fn compacted_watch_start_names_the_compacted_revision() {
        let status = Status::from(Error::Compacted { start: 5, compacted: 41 });
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(status.metadata().get(COMPACT_REVISION).unwrap(), "41");
        assert!(status.message().contains("oldest start revision 42"), "{}", status.message());
    }

    #[test]
    fn each_kind_of_failure_has_its_code() {
        assert_eq!(Status::from(Error::InvalidRequest("empty key".into())).code(), Code::InvalidArgument);
        assert_eq!(Status::from(Error::NotVoter { node: 2, group: 3 }).code(), Code::FailedPrecondition);
        assert_eq!(Status::from(Error::FellBehind).code(), Code::DataLoss);
        assert_eq!(Status::from(Error::ShuttingDown).code(), Code::Unavailable);
        assert_eq!(Status::from(Error::corrupt("sm", "bad bytes")).code(), Code::Internal);
    }
}
