//! The API reference as springdoc serves it: `openapi.yaml` (compiled into the binary, so the
//! document always matches the build) as JSON at `/v3/api-docs` and as YAML at
//! `/v3/api-docs.yaml`, and Swagger UI's static files (built from `swagger-ui/`, directory
//! `DISCODEIT_SWAGGER_UI_DIR`) at `/swagger-ui/`, with `/swagger-ui` and `/swagger-ui.html`
//! redirecting to its page.

use bytes::Bytes;
use http::{header, Method, StatusCode};
use serde_json::{Number, Value};
use std::sync::OnceLock;
use yaml_rust2::{Yaml, YamlLoader};

use super::response::{self, set_header, Resp};
use crate::error::ApiError;
use crate::net::App;

/// The OpenAPI document, as written.
pub const OPENAPI_YAML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"));

/// Where Swagger UI's page lives (what springdoc redirects to).
const SWAGGER_UI_PAGE: &str = "/swagger-ui/index.html";
/// springdoc's media type for the YAML document.
const OPENAPI_YAML_TYPE: &str = "application/vnd.oai.openapi";

/// The document as JSON text in the YAML's key order (converted once).
fn document_json() -> Result<Bytes, String> {
    static JSON: OnceLock<Result<Bytes, String>> = OnceLock::new();
    JSON.get_or_init(|| yaml_to_json(OPENAPI_YAML).map(Bytes::from))
        .clone()
}

/// The document as a JSON value.
pub fn document() -> Result<Value, String> {
    let json = document_json()?;
    serde_json::from_slice(&json).map_err(|e| e.to_string())
}

/// The metrics route label of Swagger UI's files.
const SWAGGER_UI_ROUTE: &str = "/swagger-ui/**";

/// Answers the API-reference paths with their route label; `None` for every other path.
pub async fn route(app: &App, method: &Method, path: &str) -> Option<(&'static str, Resp)> {
    let label = match path {
        "/v3/api-docs" | "/v3/api-docs/" => "/v3/api-docs",
        "/v3/api-docs.yaml" => "/v3/api-docs.yaml",
        "/swagger-ui" | "/swagger-ui.html" => "/swagger-ui",
        _ if path.starts_with("/swagger-ui/") => SWAGGER_UI_ROUTE,
        _ => return None,
    };
    if method != Method::GET && method != Method::HEAD {
        let mut r = response::error(&ApiError::method_not_allowed(method.as_str()), path);
        set_header(&mut r, header::ALLOW, "GET, HEAD");
        return Some((label, r));
    }
    let resp = match label {
        SWAGGER_UI_ROUTE => {
            let file = path.trim_start_matches("/swagger-ui/");
            match &app.swagger_ui {
                Some(files) => files.serve(file).await,
                None => response::error(
                    &ApiError::not_found_route(path).detail(
                        "reason",
                        "Swagger UI is not installed (DISCODEIT_SWAGGER_UI_DIR)",
                    ),
                    path,
                ),
            }
        }
        "/v3/api-docs.yaml" => response::with_body(StatusCode::OK, OPENAPI_YAML_TYPE, OPENAPI_YAML),
        "/swagger-ui" => {
            let mut r = response::status_only(StatusCode::FOUND);
            set_header(&mut r, header::LOCATION, SWAGGER_UI_PAGE);
            r
        }
        _ => match document_json() {
            Ok(json) => response::with_body(StatusCode::OK, response::JSON, json),
            Err(e) => response::error(&ApiError::internal(format!("openapi.yaml: {e}")), path),
        },
    };
    Some((label, resp))
}

/// Converts a YAML document (the JSON-compatible subset OpenAPI uses) to JSON text, keeping
/// the key order (Swagger UI lists tags and operations in document order).
pub fn yaml_to_json(text: &str) -> Result<String, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    let [doc] = docs.as_slice() else {
        return Err(format!("expected one YAML document, found {}", docs.len()));
    };
    let mut out = String::with_capacity(text.len());
    emit(doc, &mut out)?;
    Ok(out)
}

fn emit(y: &Yaml, out: &mut String) -> Result<(), String> {
    let quoted = |s: &str| serde_json::to_string(s).map_err(|e| e.to_string());
    match y {
        Yaml::Null => out.push_str("null"),
        Yaml::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Yaml::Integer(i) => out.push_str(&i.to_string()),
        Yaml::Real(r) => {
            let n = r
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .ok_or_else(|| format!("not a finite number: {r}"))?;
            out.push_str(&n.to_string());
        }
        Yaml::String(s) => out.push_str(&quoted(s)?),
        Yaml::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                emit(item, out)?;
            }
            out.push(']');
        }
        Yaml::Hash(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(n) => n.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                out.push_str(&quoted(&key)?);
                out.push(':');
                emit(v, out)?;
            }
            out.push('}');
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err(format!("unsupported YAML node {y:?}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::api::Route;
    use std::collections::BTreeSet;

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// Every (METHOD, path template) the document describes.
    fn documented() -> BTreeSet<(String, String)> {
        let doc = document().expect("openapi.yaml parses");
        let paths = doc["paths"].as_object().expect("paths").clone();
        let mut ops = BTreeSet::new();
        for (path, item) in &paths {
            for (key, _) in item.as_object().expect("path item") {
                if METHODS.contains(&key.as_str()) {
                    ops.insert((key.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    /// Adding a route without documenting it (or documenting one that does not exist) fails.
    #[test]
    fn document_covers_exactly_the_routes() {
        let routed: BTreeSet<(String, String)> = Route::all()
            .iter()
            .map(|r| {
                let (m, t) = r.template();
                (m.as_str().to_string(), t.to_string())
            })
            .collect();
        let documented = documented();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routes missing from openapi.yaml: {undocumented:?}; \
             openapi.yaml operations the router does not serve: {unrouted:?}"
        );
    }

    #[test]
    fn every_operation_has_an_id_and_responses() {
        let doc = document().unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = BTreeSet::new();
        for (method, path) in documented() {
            let op = &doc["paths"][&path][method.to_ascii_lowercase()];
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "duplicate operationId {id}");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }

    #[test]
    fn yaml_converts_to_json_in_key_order() {
        let v = yaml_to_json("z: 1\nb: 1.5\nc: '200'\nd: [true, null, \"x\\\"y\"]\n'404': {}\n");
        assert_eq!(
            v.unwrap(),
            r#"{"z":1,"b":1.5,"c":"200","d":[true,null,"x\"y"],"404":{}}"#
        );
        assert_eq!(
            yaml_to_json("a: &x 1\nb: *x\n").unwrap(),
            r#"{"a":1,"b":1}"#
        );
        assert!(yaml_to_json("a: [").is_err());
    }
}
