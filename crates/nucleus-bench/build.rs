//! Compiles the minimal copy of etcd's v3 API in `proto/etcd.proto` (protox: no system `protoc`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let fds = protox::compile([root.join("etcd.proto")], [&root])?;
    tonic_prost_build::configure().build_client(true).build_server(false).compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
