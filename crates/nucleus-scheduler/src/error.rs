use crate::placement::Shortage;

/// Everything the scheduler library can fail with. The variants after `Lease` say why a proton
/// cannot be placed yet; their text is shown as the proton's status message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] nucleus_client::Error),
    #[error("shard lease: {0}")]
    Lease(String),

    #[error("No node agent is connected to run this proton; start one (nucleus agent) or check its logs")]
    NoAgent,
    #[error("None of the requested resource bundles ({0}) exists; see GET /api/v2/mlops/compute/bundles/ for the catalogue")]
    UnknownBundles(String),
    #[error("resourceAllocation of container {container} in group {group} is invalid: {reason}; fix it in the workload's runtime")]
    InvalidAllocation { container: String, group: String, reason: Box<Error> },
    #[error("{field} {expected}")]
    AllocationField { field: String, expected: String },
    #[error("Waiting for the release of an earlier reservation on agent {0}")]
    ReservationHeld(String),
    #[error("{}", no_room(.0))]
    NoRoom(Vec<(String, Shortage)>),
}

fn no_room(shortages: &[(String, Shortage)]) -> String {
    match shortages {
        [(_, only)] => format!("{only}; waiting for capacity"),
        many => {
            let each: Vec<String> = many.iter().map(|(agent, shortage)| format!("on agent {agent}, {shortage}")).collect();
            format!("No agent has room: {}; waiting for capacity", each.join("; "))
        }
    }
}
