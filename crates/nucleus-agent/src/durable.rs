//! Small JSON files in the agent's data dir that survive a crash: each write goes to a temporary
//! file that is fsync'd and then renamed over the old one, so a reader sees the old or the new
//! content, never a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Reads `path`; None when there is no such file (nothing was ever written, or it was cleared).
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::DataDir { action: "read", path: path.to_owned(), source });
        }
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|err| Error::CorruptStateFile { path: path.to_owned(), problem: err.to_string() })
}

/// Replaces `path` with `value` as JSON: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|err| Error::DataDir { action: "encode", path: path.to_owned(), source: err.into() })?;
    write_bytes(path, &bytes).map_err(|source| Error::DataDir { action: "write", path: path.to_owned(), source })
}

/// Removes `path`; a file that is not there is fine.
pub(crate) fn remove(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path).map_err(|source| Error::DataDir { action: "sync the directory of", path: path.to_owned(), source }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::DataDir { action: "remove", path: path.to_owned(), source }),
    }
}

/// Where `path` is written before it is renamed into place.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let temp = temp_path(path);
    let mut file = File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, path)?;
    sync_parent(path)
}

/// Makes a rename or removal in `path`'s directory durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_write_replaces_the_whole_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested/state.json");
        let long: BTreeMap<String, u64> = (0..100).map(|i| (format!("key-{i}"), i)).collect();
        write_json(&path, &long).expect("write");
        let short = BTreeMap::from([("only".to_owned(), 1u64)]);
        write_json(&path, &short).expect("replace");

        let read: Option<BTreeMap<String, u64>> = read_json(&path).expect("read");
        assert_eq!(read, Some(short));
        let names: Vec<_> =
            fs::read_dir(path.parent().expect("dir")).expect("list").map(|entry| entry.expect("entry").file_name()).collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn a_write_cut_short_before_its_rename_leaves_the_old_content() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.json");
        write_json(&path, &vec![1, 2, 3]).expect("write");
        // What a crash halfway through the next write leaves behind.
        fs::write(temp_path(&path), b"[4, 5").expect("partial temp file");

        let read: Option<Vec<u32>> = read_json(&path).expect("read");
        assert_eq!(read, Some(vec![1, 2, 3]));
        write_json(&path, &vec![4, 5]).expect("the next write succeeds");
        let read: Option<Vec<u32>> = read_json(&path).expect("read");
        assert_eq!(read, Some(vec![4, 5]));
    }

    #[test]
    fn missing_is_none_and_garbage_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.json");
        assert_eq!(read_json::<Vec<u32>>(&path).expect("read"), None);
        fs::write(&path, b"{not json").expect("write");
        let err = read_json::<Vec<u32>>(&path).expect_err("corrupt");
        assert!(matches!(err, Error::CorruptStateFile { .. }), "{err}");
        assert!(err.to_string().contains("state.json"), "{err}");
        remove(&path).expect("remove");
        remove(&path).expect("removing twice is fine");
        assert_eq!(read_json::<Vec<u32>>(&path).expect("read"), None);
    }
}
