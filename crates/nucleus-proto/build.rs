use std::path::PathBuf;

const FILES: &[&str] =
    &["nucleus/meta/v1/meta.proto", "nucleus/raft/v1/raft.proto", "nucleus/agent/v1/agent.proto", "nucleus/gateway/v1/gateway.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let fds = protox::compile(FILES.iter().map(|f| root.join(f)), [&root])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
