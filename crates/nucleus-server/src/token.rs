//! The administrator's API token: given (flag, environment or file), or for a dev stack generated
//! once and kept in the data dir (mode 0600) so that restarts keep working with the same token.
//! A given token must be at least [`MIN_LENGTH`] characters: it opens everything.

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

/// The shortest administrator token accepted.
pub const MIN_LENGTH: usize = 32;

/// The administrator token from `--token` or, in its place, the first line of `--token-file`
/// (which keeps it out of `ps`); refused when shorter than [`MIN_LENGTH`].
pub fn given(token: Option<String>, file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let token = match (token, file) {
        (Some(_), Some(_)) => anyhow::bail!("give the administrator token with --token or --token-file, not both"),
        (Some(token), None) => token,
        (None, Some(path)) => fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        (None, None) => return Ok(None),
    };
    anyhow::ensure!(
        token.chars().count() >= MIN_LENGTH && !token.chars().any(char::is_whitespace),
        "the administrator token must be at least {MIN_LENGTH} characters without spaces (it opens everything); \
         make one with `openssl rand -hex 24`, or leave it out and `nucleus dev` generates one"
    );
    Ok(Some(token))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_are_refused_and_files_are_read() {
        let err = given(Some("change-me".into()), None).expect_err("too short");
        assert!(err.to_string().contains("at least 32"), "{err}");
        let long = "a".repeat(MIN_LENGTH);
        assert_eq!(given(Some(long.clone()), None).expect("long enough"), Some(long.clone()));
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("token");
        fs::write(&file, format!("{long}\n")).expect("write");
        assert_eq!(given(None, Some(&file)).expect("from the file"), Some(long.clone()));
        assert!(given(Some(long), Some(&file)).is_err(), "not both");
        assert_eq!(given(None, None).expect("none"), None);
    }
}
