//! The API token of a dev stack: given on the command line, or generated once and kept in the
//! data dir (mode 0600) so that restarts keep working with the same token.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;

pub enum Token {
    Given(String),
    Loaded(String),
    Generated(String),
}

impl Token {
    pub fn value(&self) -> &str {
        match self {
            Token::Given(t) | Token::Loaded(t) | Token::Generated(t) => t,
        }
    }
}

pub fn resolve(given: Option<String>, data_dir: &Path) -> anyhow::Result<Token> {
    if let Some(token) = given {
        return Ok(Token::Given(token));
    }
    let path = data_dir.join("token");
    if path.exists() {
        let token = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Token::Loaded(token.trim().to_owned()));
    }
    let token = format!("nuc_{:032x}", rand::random::<u128>());
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(token.as_bytes())?;
    Ok(Token::Generated(token))
}
