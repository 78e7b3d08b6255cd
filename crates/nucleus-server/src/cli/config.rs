//! Contexts, like kubectl's: named (server URL, token) pairs in a YAML file readable by its owner
//! only, one of them current. `NUCLEUS_URL` / `NUCLEUS_TOKEN` (or `--server` / `--token`) win
//! over the file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Context {
    pub server: String,
    pub token: String,
}

/// Where the file is: `$NUCLEUS_CONFIG`, else `$XDG_CONFIG_HOME/nucleus/config.yaml`, else
/// `~/.config/nucleus/config.yaml`.
pub fn path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("NUCLEUS_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("HOME is not set: set NUCLEUS_CONFIG to the config file's path")?)
            .join(".config"),
    };
    Ok(base.join("nucleus").join("config.yaml"))
}

impl Config {
    pub fn load() -> anyhow::Result<Config> {
        let path = path()?;
        match fs::read_to_string(&path) {
            Ok(text) => {
                yaml_serde::from_str(&text).with_context(|| format!("{} is not a valid nucleus config; fix or delete it", path.display()))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the file with mode 0600 (it holds tokens), creating its directory.
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = path()?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = yaml_serde::to_string(self)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        // An existing file keeps its mode on open: make sure it is the owner's only.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())?;
        Ok(path)
    }

    pub fn current(&self) -> Option<(&str, &Context)> {
        let name = self.current_context.as_deref()?;
        self.contexts.get(name).map(|context| (name, context))
    }

    pub fn use_context(&mut self, name: &str) -> anyhow::Result<()> {
        if !self.contexts.contains_key(name) {
            let known: Vec<&str> = self.contexts.keys().map(String::as_str).collect();
            bail!(
                "no context named '{name}' (known: {}); add it with `nucleus config set-context {name} --server URL --token TOKEN`",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            );
        }
        self.current_context = Some(name.to_owned());
        Ok(())
    }
}

/// The server and token to use: flags and environment first, then the current context.
pub fn resolve(server: Option<String>, token: Option<String>) -> anyhow::Result<Context> {
    let config = Config::load()?;
    let current = config.current().map(|(_, context)| context.clone());
    let server = server.or_else(|| current.as_ref().map(|c| c.server.clone()));
    let token = token.or_else(|| current.as_ref().map(|c| c.token.clone()));
    match (server, token) {
        (Some(server), Some(token)) => Ok(Context { server: server.trim_end_matches('/').to_owned(), token }),
        _ => bail!(
            "no server to talk to: run `nucleus config set-context NAME --server http://127.0.0.1:8080 --token TOKEN` \
             (then `nucleus config use-context NAME`), or set NUCLEUS_URL and NUCLEUS_TOKEN"
        ),
    }
}
