//! The gateway's own OpenAPI 3.1 document, served at `/api/v2/openapi.json` and `.yaml`. Its
//! schemas are derived from the nucleus-api types the handlers serialize and parse; its
//! operations are listed in [`operations`], one per route of [`crate::router`].

mod document;
mod operations;

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::PathItem;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, SecurityRequirement};

use document::Builder;

/// Legacy spellings of the same routes (DataRobot's older clients call these).
const ALIASES: [(&str, &str); 2] =
    [("/api/v2/workloads", "/api/v2/console/workloads"), ("/api/v2/artifacts", "/api/v2/registry/artifacts")];

/// The whole document.
pub fn document() -> OpenApi {
    let mut api = Builder::default();
    operations::add_all(&mut api);
    let mut components = ComponentsBuilder::new().security_scheme(
        "token",
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("`Bearer <token>` or `Token <token>`")).build(),
        ),
    );
    for (name, schema) in std::mem::take(&mut api.schemas) {
        components = components.schema(name, schema);
    }
    let mut paths = api.paths;
    with_aliases(&mut paths);
    OpenApiBuilder::new()
        .info(InfoBuilder::new().title("Nucleus Workload API").version(env!("CARGO_PKG_VERSION")).description(Some(
            "Containerized AI services behind stable, governed endpoints. Every route also answers with a trailing slash.",
        )))
        .paths(paths)
        .components(Some(components.build()))
        .security(Some(vec![SecurityRequirement::new("token", Vec::<String>::new())]))
        .build()
}

/// Copies every operation under a primary prefix to its legacy alias, with its own operation id.
fn with_aliases(paths: &mut utoipa::openapi::Paths) {
    let mut copies: Vec<(String, PathItem)> = Vec::new();
    for (path, item) in &paths.paths {
        for (primary, alias) in ALIASES {
            let Some(rest) = path.strip_prefix(primary) else { continue };
            if !(rest.is_empty() || rest.starts_with('/')) {
                continue;
            }
            let mut item = item.clone();
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten() {
                operation.operation_id = operation.operation_id.as_ref().map(|id| format!("{id}Legacy"));
                operation.deprecated = Some(utoipa::openapi::Deprecated::True);
            }
            copies.push((format!("{alias}{rest}"), item));
        }
    }
    paths.paths.extend(copies);
}

struct Rendered {
    json: String,
    yaml: String,
}

fn rendered() -> &'static Rendered {
    static RENDERED: OnceLock<Rendered> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let doc = document();
        Rendered {
            json: doc.to_pretty_json().expect("the OpenAPI document is plain data"),
            yaml: doc.to_yaml().expect("the OpenAPI document is plain data"),
        }
    })
}

pub async fn json() -> Response {
    ([(CONTENT_TYPE, "application/json")], rendered().json.as_str()).into_response()
}

pub async fn yaml() -> Response {
    ([(CONTENT_TYPE, "application/yaml")], rendered().yaml.as_str()).into_response()
}

#[cfg(test)]
mod tests {
    use super::{document, rendered};

    /// docs/api/openapi.json is the served document, byte for byte; `NUCLEUS_BLESS=1` rewrites it.
    #[test]
    fn openapi_document_is_checked_in() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api/openapi.json");
        let served = format!("{}\n", rendered().json);
        if std::env::var_os("NUCLEUS_BLESS").is_some() {
            std::fs::write(&path, &served).expect("write docs/api/openapi.json");
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == served,
            "docs/api/openapi.json differs from the document the gateway serves; regenerate it with \
             `NUCLEUS_BLESS=1 cargo test -p nucleus-gateway openapi_document_is_checked_in` and commit it"
        );
    }

    #[test]
    fn every_operation_has_an_id_and_every_reference_resolves() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = doc.to_string();
        let mut unresolved = Vec::new();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            if !schemas.contains_key(name) {
                unresolved.push(name.to_owned());
            }
        }
        assert!(unresolved.is_empty(), "unresolved references: {unresolved:?}");
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            }
        }
        assert!(doc["paths"]["/api/v2/console/workloads/{workload_id}/replacement"]["post"].is_object(), "legacy alias missing");
        assert!(doc["paths"]["/api/v2/registry/artifacts"]["post"].is_object(), "legacy alias missing");
    }

    #[test]
    fn the_yaml_and_json_forms_agree() {
        let doc = document();
        let from_yaml: serde_json::Value = yaml_serde::from_str(&doc.to_yaml().unwrap()).unwrap();
        assert_eq!(from_yaml, serde_json::to_value(&doc).unwrap());
    }
}
