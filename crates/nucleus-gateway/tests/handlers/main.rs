//! The REST handlers' rules, in process: the axum router called directly (no sockets on the HTTP
//! side) against a real meta node over gRPC. No scheduler runs, so workloads stay as the gateway
//! wrote them; what the scheduler does is tested end to end in nucleus-server/tests.

mod harness;

mod artifacts;
mod deployments;
mod identity;
mod lifetime;
mod listing;
mod replacements;
mod resources;
mod workloads;
