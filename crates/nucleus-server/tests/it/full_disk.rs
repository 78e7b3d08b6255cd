//! A metadata node whose disk fills up stops with a clear message and a failing exit status,
//! instead of answering "raft stopped" for ever.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nucleus_client::{MetaClient, Txn};

use crate::harness::temp_dir;

/// A tmpfs of `size` mounted at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("mount point");
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(path).status();
        assert!(status.is_ok_and(|s| s.success()), "mounting a tmpfs at {} (needs root)", path.display());
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros into `path` until the disk is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test]
async fn a_meta_node_whose_disk_is_full_exits_with_a_clear_error() {
    let dir = temp_dir();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "96m");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .args(["meta", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(disk.0.join("meta"))
        .env("RUST_LOG", "warn,openraft=off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nucleus runs");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("serving on ") {
        line.clear();
        assert!(stdout.read_line(&mut line).expect("read") > 0, "nucleus meta exited before serving");
    }
    let addr = line.split("serving on ").nth(1).unwrap().trim().to_owned();
    let meta = MetaClient::new(&[addr], &nucleus_tls::Dialer::plaintext()).expect("client");
    let before = Txn::new().put_json("agents/before", &"ok").expect("json");
    meta.write(before).await.expect("a write before the disk fills");

    fill(&disk.0.join("filler"));
    let value = "x".repeat(256 * 1024);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the node kept running on a full disk");
        let after = Txn::new().put_json("agents/after", &value).expect("json");
        let _ = tokio::time::timeout(Duration::from_secs(2), meta.write(after)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "a storage failure is a failing exit: {status}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert!(stderr.contains("storage failed") && stderr.contains("--data-dir"), "the log says what happened and what to do: {stderr}");
}
