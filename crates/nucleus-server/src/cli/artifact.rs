//! `nucleus artifact ...`.

use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::api::Api;
use super::output::{Format, age, print_document, print_table, text};
use super::read_spec;

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Creates a draft artifact from a spec file (YAML or JSON, `-` for stdin).
    Create {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: Format,
    },
    /// Shows an artifact.
    Get {
        id: String,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: Format,
    },
    /// Lists artifacts.
    List {
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: Format,
    },
    /// Locks a draft artifact (one way: a locked artifact never changes).
    Lock { id: String },
    /// Makes a new draft from an artifact.
    Clone {
        id: String,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: Format,
    },
    /// Deletes an artifact no workload runs.
    Delete { id: String },
}

fn row(artifact: &Value, wide: bool) -> Vec<String> {
    let mut cells = vec![
        text(&artifact["id"]),
        text(&artifact["name"]),
        text(&artifact["status"]),
        text(&artifact["version"]),
        artifact["createdAt"].as_str().map(age).unwrap_or_default(),
    ];
    if wide {
        cells.extend([text(&artifact["type"]), text(&artifact["artifactRepositoryId"])]);
    }
    cells
}

fn print_rows(output: Format, artifacts: &[Value]) {
    let wide = output == Format::Wide;
    let mut headers = vec!["ID", "NAME", "STATUS", "VERSION", "AGE"];
    if wide {
        headers.extend(["TYPE", "REPOSITORY"]);
    }
    print_table(&headers, &artifacts.iter().map(|a| row(a, wide)).collect::<Vec<_>>());
}

pub async fn run(command: ArtifactCommand, api: &Api) -> anyhow::Result<()> {
    match command {
        ArtifactCommand::Create { file, output } => {
            let created: Value = api.json(Method::POST, "/artifacts/", Some(&read_spec(&file)?)).await?;
            if !print_document(output, &created)? {
                println!("artifact {} created ({})", text(&created["id"]), text(&created["status"]));
            }
        }
        ArtifactCommand::Get { id, output } => {
            let artifact: Value = api.get(&format!("/artifacts/{id}/")).await?;
            if !print_document(output, &artifact)? {
                print_rows(output, &[artifact]);
            }
        }
        ArtifactCommand::List { output } => {
            let all = api.list_all("/artifacts/?limit=100", usize::MAX).await?;
            if !print_document(output, &Value::Array(all.clone()))? {
                print_rows(output, &all);
            }
        }
        ArtifactCommand::Lock { id } => {
            let _: Value = api.json(Method::PATCH, &format!("/artifacts/{id}/"), Some(&json!({"status": "locked"}))).await?;
            println!("artifact {id} locked");
        }
        ArtifactCommand::Clone { id, output } => {
            let clone: Value = api.json(Method::POST, &format!("/artifacts/{id}/clone/"), Some(&json!({}))).await?;
            if !print_document(output, &clone)? {
                println!("artifact {} cloned from {id}", text(&clone["id"]));
            }
        }
        ArtifactCommand::Delete { id } => {
            api.send(Method::DELETE, &format!("/artifacts/{id}/"), None).await?;
            println!("artifact {id} deleted");
        }
    }
    Ok(())
}
