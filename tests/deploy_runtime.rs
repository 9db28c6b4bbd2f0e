//! The deployment's run-time values: what `docker-compose config` accepts but `docker compose
//! up` would only reject at start, checked here since no Docker engine runs in CI.
//!
//! - the KRaft cluster id is 22 base64url characters encoding 16 bytes;
//! - the secrets are required (`${VAR:?}`) and `.env.example` sets all of them;
//! - every variable the backend gets is one the server reads (`config::KNOWN_VARS`), and the
//!   server accepts the values;
//! - every healthcheck runs a tool its image has, and the backend's probes a real route on
//!   the listener the port names (asked of the real server);
//! - only nginx publishes a port (3000); PostgreSQL, Redis and Kafka stay on the internal
//!   network; the observability profile's Grafana binds to loopback only;
//! - descriptor limits and nginx's connection limits fit tens of thousands of clients;
//! - Prometheus scrapes every replica's admin port and the dashboard plots only metrics the
//!   server exports;
//! - the local multi-instance harness runs the backends with compose's environment.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use discodeit::config::{self, Config};
use discodeit::telemetry::metrics::names;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Installs a Debian package through scripts/lib.sh when `tool` is missing.
fn ensure(tool: &str, package: &str) {
    let script = format!(
        "command -v {tool} >/dev/null || {{ source scripts/lib.sh && ensure_debs {package} >&2; }}"
    );
    let ok = Command::new("bash")
        .current_dir(repo())
        .args(["-c", &script])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "could not install {package}");
}

/// YAML to JSON through PyYAML (docker-compose's own dependency).
fn yaml_to_json(yaml: &str) -> Value {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "yaml parse");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `docker-compose config` with only `env_file`'s variables (the test process's own
/// environment, e.g. SECURITY_JWT_SECRET from scripts/test.sh, must not leak in).
fn compose_config_with(env_file: &Path, profile: Option<&str>) -> Result<Value, String> {
    ensure("docker-compose", "docker-compose");
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(repo())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--env-file")
        .arg(env_file)
        .args(["-f", "compose.yaml"]);
    if let Some(p) = profile {
        cmd.args(["--profile", p]);
    }
    let out = cmd.arg("config").output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(yaml_to_json(&String::from_utf8_lossy(&out.stdout)))
}

fn env_example() -> PathBuf {
    repo().join(".env.example")
}

fn compose() -> Value {
    compose_config_with(&env_example(), None).expect("docker-compose config with .env.example")
}

fn service<'a>(c: &'a Value, name: &str) -> &'a Value {
    let s = &c["services"][name];
    assert!(s.is_object(), "no service {name}");
    s
}

fn env_of(s: &Value) -> BTreeMap<String, String> {
    s["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map(str::to_string).unwrap_or(v.to_string());
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The KRaft cluster id Kafka's storage format step accepts (`Uuid.fromString`): base64url
/// without padding, 22 characters, 16 bytes. Java's decoder ignores the last character's
/// 4 spare bits, so this one does too (Kafka's own example id sets them).
fn valid_kraft_cluster_id(id: &str) -> Result<(), String> {
    use base64::engine::{general_purpose::GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    if id.len() != 22 {
        return Err(format!("{id:?} has {} characters, not 22", id.len()));
    }
    let java = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    let bytes = java
        .decode(id)
        .map_err(|e| format!("{id:?} is not base64url: {e}"))?;
    if bytes.len() != 16 {
        return Err(format!("{id:?} decodes to {} bytes, not 16", bytes.len()));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err("the all-zero id is reserved".into());
    }
    Ok(())
}

#[test]
fn the_kafka_cluster_id_is_a_valid_kraft_id() {
    assert!(valid_kraft_cluster_id("d1sc0de1tKafkaC1uster").is_err());
    assert!(valid_kraft_cluster_id("d1sc0de1tKafkaC1uster+").is_err());
    assert!(valid_kraft_cluster_id("MkU3OEVBNTcwNTJENDM2Qk").is_ok());
    let c = compose();
    let id = env_of(service(&c, "kafka"))["CLUSTER_ID"].clone();
    valid_kraft_cluster_id(&id).unwrap();
    // The default too (KAFKA_CLUSTER_ID unset).
    let mut defaults = std::fs::read_to_string(env_example()).unwrap();
    defaults = defaults
        .lines()
        .filter(|l| !l.starts_with("KAFKA_CLUSTER_ID"))
        .map(|l| format!("{l}\n"))
        .collect();
    let file = temp_env(&defaults);
    let c = compose_config_with(&file, None).unwrap();
    let id = env_of(service(&c, "kafka"))["CLUSTER_ID"].clone();
    valid_kraft_cluster_id(&id).unwrap();
    let _ = std::fs::remove_file(file);
}

fn temp_env(text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "discodeit-env-{}.env",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn secrets_are_required_and_env_example_sets_them() {
    let example = std::fs::read_to_string(env_example()).expect(".env.example");
    for secret in [
        "SECURITY_JWT_SECRET",
        "DISCODEIT_ADMIN_PASSWORD",
        "POSTGRES_PASSWORD",
    ] {
        assert!(
            example
                .lines()
                .any(|l| l.starts_with(&format!("{secret}="))),
            ".env.example sets {secret}"
        );
        let without: String = example
            .lines()
            .filter(|l| !l.starts_with(&format!("{secret}=")))
            .map(|l| format!("{l}\n"))
            .collect();
        let file = temp_env(&without);
        let err = compose_config_with(&file, None)
            .err()
            .unwrap_or_else(|| panic!("compose starts without {secret}"));
        assert!(err.contains(secret), "{secret}: {err}");
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn the_backend_gets_only_variables_the_server_knows_with_valid_values() {
    let c = compose();
    let env = env_of(service(&c, "backend"));
    for name in env.keys() {
        assert!(config::is_known(name), "compose sets unknown {name}");
    }
    for (name, _) in dockerfile_env(&read("Dockerfile")) {
        assert!(config::is_known(&name), "Dockerfile sets unknown {name}");
    }
    // The server starts with these values (the same validation as at start-up).
    let cfg = Config::from_lookup(|k| env.get(k).cloned()).expect("compose's backend config");
    assert_eq!(cfg.addr.port(), 8080);
    assert!(
        !cfg.admin_addr.ip().is_loopback(),
        "Prometheus scrapes the admin port from another container"
    );
    assert!(cfg.redis_url.is_some() && cfg.kafka_bootstrap.is_some());
}

/// `ENV A=1 B=2` lines of a Dockerfile's last stage.
fn dockerfile_env(dockerfile: &str) -> Vec<(String, String)> {
    let last = dockerfile.rsplit("\nFROM ").next().unwrap_or(dockerfile);
    let joined = last.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENV "))
        .flat_map(|rest| {
            rest.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The last stage's base image and the Debian/Alpine packages it installs.
fn dockerfile_runtime(dockerfile: &str) -> (String, Vec<String>) {
    let last = dockerfile.rsplit("\nFROM ").next().unwrap_or(dockerfile);
    let base = last.split_whitespace().next().unwrap_or("").to_string();
    let joined = last.replace("\\\n", " ");
    let mut packages = Vec::new();
    for l in joined.lines() {
        for marker in ["apt-get install", "apk add"] {
            if let Some(i) = l.find(marker) {
                let rest = &l[i + marker.len()..];
                let cmd = rest.split("&&").next().unwrap_or("");
                packages.extend(
                    cmd.split_whitespace()
                        .filter(|w| !w.starts_with('-'))
                        .map(str::to_string),
                );
            }
        }
    }
    (base, packages)
}

/// Whether `tool` exists in `image` (a base image plus installed packages). The base images'
/// contents are facts about those images: Alpine's busybox has `wget` (not curl), Debian slim
/// has neither until installed, the official images ship their clients.
fn image_has(image: &str, packages: &[String], tool: &str) -> bool {
    let tool = tool.rsplit('/').next().unwrap_or(tool);
    if ["sh", "test", "cat"].contains(&tool) {
        return true;
    }
    if packages.iter().any(|p| p == tool) {
        return true;
    }
    let name = image.split(':').next().unwrap_or(image);
    let alpine = image.contains("alpine") || name.starts_with("prom/");
    match tool {
        "wget" => alpine,
        "pg_isready" => name == "postgres",
        "redis-cli" => name == "redis",
        t if t.starts_with("kafka-") && t.ends_with(".sh") => name == "apache/kafka",
        _ => false,
    }
}

/// The executable a healthcheck runs (CMD or CMD-SHELL).
fn healthcheck_tool(test: &Value) -> String {
    let parts: Vec<&str> = test
        .as_array()
        .expect("healthcheck test list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match parts.first() {
        Some(&"CMD") => parts[1].to_string(),
        Some(&"CMD-SHELL") => parts[1].split_whitespace().next().unwrap_or("").to_string(),
        other => panic!("healthcheck form {other:?}"),
    }
}

fn healthcheck_url(text: &str) -> Option<(u16, String)> {
    let start = text.find("http://")?;
    let url = text[start + "http://".len()..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
        .next()?;
    let (hostport, path) = url.split_once('/')?;
    let port = hostport.rsplit_once(':')?.1.parse().ok()?;
    Some((port, format!("/{path}")))
}

/// Asks the real server for `path` on the listener whose configured port is `port`.
async fn assert_real_route(
    server: &common::TestServer,
    cfg: &Config,
    port: u16,
    path: &str,
    what: &str,
) {
    let base = if port == cfg.admin_addr.port() {
        &server.admin_base
    } else if port == cfg.addr.port() {
        &server.base
    } else {
        panic!("{what}: port {port} is no listener of the server ({cfg:?})");
    };
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    assert_eq!(r.status(), 200, "{what}: GET {path}");
}

#[tokio::test]
async fn healthchecks_run_tools_the_images_have_against_real_routes() {
    let c = compose();
    let server = common::TestServer::start().await;
    let backend_env = env_of(service(&c, "backend"));
    let backend_cfg = Config::from_lookup(|k| backend_env.get(k).cloned()).unwrap();

    for (name, s) in c["services"].as_object().unwrap() {
        let (image, packages) = match s["build"]["dockerfile"].as_str() {
            Some(df) => dockerfile_runtime(&read(df)),
            None => (s["image"].as_str().unwrap_or("").to_string(), Vec::new()),
        };
        let core = ["backend", "postgres", "redis", "kafka", "nginx"].contains(&name.as_str());
        let Some(test) = s["healthcheck"].get("test") else {
            assert!(!core, "{name} has no healthcheck");
            continue;
        };
        let tool = healthcheck_tool(test);
        assert!(
            image_has(&image, &packages, &tool),
            "{name}: healthcheck runs {tool}, which {image} (+{packages:?}) lacks"
        );
        if name == "backend" {
            let (port, path) = healthcheck_url(&test.to_string()).expect("backend probe URL");
            assert_eq!(
                path, "/actuator/health/readiness",
                "compose gates on readiness"
            );
            assert_real_route(&server, &backend_cfg, port, &path, "compose backend").await;
        }
    }

    // The backend image's own HEALTHCHECK, against the image's configuration.
    let df = read("Dockerfile");
    let (image, packages) = dockerfile_runtime(&df);
    let hc = df
        .split("HEALTHCHECK")
        .nth(1)
        .expect("Dockerfile HEALTHCHECK")
        .replace("\\\n", " ");
    let cmd = hc.split("CMD").nth(1).unwrap().trim().to_string();
    let tool = cmd.split_whitespace().next().unwrap();
    assert!(image_has(&image, &packages, tool), "Dockerfile: {tool}");
    let env: BTreeMap<String, String> = dockerfile_env(&df)
        .into_iter()
        .chain([
            ("DATABASE_URL".into(), "postgres://x".into()),
            ("SECURITY_JWT_SECRET".into(), "x".repeat(32)),
        ])
        .collect();
    let image_cfg = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let (port, path) = healthcheck_url(&cmd).expect("Dockerfile probe URL");
    assert_real_route(&server, &image_cfg, port, &path, "Dockerfile").await;

    // nginx's own probe.
    let ndf = read("nginx/Dockerfile");
    let (image, packages) = dockerfile_runtime(&ndf);
    let hc = ndf.split("HEALTHCHECK").nth(1).expect("nginx HEALTHCHECK");
    let tool = hc
        .split("CMD")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        image_has(&image, &packages, tool),
        "nginx/Dockerfile: {tool}"
    );
}

/// `(host_ip, published)` of each published port, whatever form compose printed.
fn published(s: &Value) -> Vec<(String, String)> {
    s["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| match p {
                    Value::String(text) => {
                        let text = text.split('/').next().unwrap_or(text);
                        let parts: Vec<&str> = text.split(':').collect();
                        match parts.as_slice() {
                            [ip, host, _] => (ip.to_string(), host.to_string()),
                            [host, _] => ("0.0.0.0".into(), host.to_string()),
                            _ => (String::new(), text.to_string()),
                        }
                    }
                    obj => (
                        obj["host_ip"].as_str().unwrap_or("0.0.0.0").to_string(),
                        obj["published"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or(obj["published"].to_string()),
                    ),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn networks(s: &Value) -> Vec<String> {
    match &s["networks"] {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn ports_and_networks_follow_the_contract() {
    let c = compose_config_with(&env_example(), Some("observability")).unwrap();
    assert_eq!(c["networks"]["internal"]["internal"], true);
    for (name, s) in c["services"].as_object().unwrap() {
        let ports = published(s);
        let observability = s["profiles"]
            .as_array()
            .is_some_and(|p| p.iter().any(|v| v == "observability"));
        match name.as_str() {
            "nginx" => assert_eq!(ports, [("0.0.0.0".to_string(), "3000".to_string())]),
            _ if observability => {
                for (ip, _) in &ports {
                    assert_eq!(ip, "127.0.0.1", "{name} publishes beyond loopback");
                }
            }
            _ => assert!(ports.is_empty(), "{name} publishes {ports:?}"),
        }
        if ["postgres", "redis", "kafka", "backend"].contains(&name.as_str()) {
            assert_eq!(networks(s), ["internal"], "{name}");
        }
        if s["profiles"].is_array() {
            assert!(observability, "{name}: unknown profile");
        }
    }
    // Without the profile, nothing but the core services would start.
    let core: BTreeSet<&str> = ["backend", "kafka", "nginx", "postgres", "redis"].into();
    let c = compose();
    let started: BTreeSet<&str> = c["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| !s["profiles"].is_array())
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(started, core);
}

fn nofile(s: &Value) -> u64 {
    let n = &s["ulimits"]["nofile"];
    n["soft"].as_u64().or(n.as_u64()).unwrap_or(0)
}

/// The number after `directive` in an nginx config.
fn directive(conf: &str, name: &str) -> Option<u64> {
    conf.lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l[name.len()..].trim().trim_end_matches(';').parse().ok())
}

#[test]
fn descriptor_limits_fit_tens_of_thousands_of_connections() {
    let c = compose();
    // Each proxied WebSocket/SSE client holds two descriptors in nginx, one in a backend.
    for name in ["nginx", "backend"] {
        assert!(
            nofile(service(&c, name)) >= 65536,
            "{name}: ulimits nofile below 65536"
        );
    }
    let conf = read("nginx/nginx.conf");
    let workers = directive(&conf, "worker_connections").expect("worker_connections");
    let rlimit = directive(&conf, "worker_rlimit_nofile").expect("worker_rlimit_nofile");
    assert!(workers >= 16384, "worker_connections {workers}");
    assert!(
        rlimit >= workers,
        "worker_rlimit_nofile {rlimit} < {workers}"
    );
    assert!(rlimit <= nofile(service(&c, "nginx")));
    assert!(
        read("nginx/Dockerfile").contains("nginx/nginx.conf /etc/nginx/nginx.conf"),
        "the image runs this nginx.conf"
    );
}

#[test]
fn prometheus_scrapes_every_replica_and_the_dashboard_plots_real_metrics() {
    let c = compose_config_with(&env_example(), Some("observability")).unwrap();
    let prom = service(&c, "prometheus");
    assert!(networks(prom).contains(&"internal".to_string()));
    let backend_env = env_of(service(&c, "backend"));
    let admin_port = backend_env["DISCODEIT_ADMIN_ADDR"]
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();

    let config = yaml_to_json(&read("deploy/prometheus/prometheus.yml"));
    let job = config["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "discodeit")
        .expect("a discodeit job");
    assert_eq!(job["metrics_path"], "/actuator/prometheus");
    // DNS discovery: the service name resolves to every replica's address.
    let dns = &job["dns_sd_configs"][0];
    assert_eq!(dns["names"][0], "backend");
    assert_eq!(dns["type"], "A");
    assert_eq!(dns["port"].to_string(), admin_port);

    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/dashboards/discodeit.json")).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");
    let mut used = BTreeSet::new();
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("discodeit_") || word.starts_with("process_") {
                used.insert(word.to_string());
            }
        }
    }
    for m in &used {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| m.strip_suffix(s))
            .unwrap_or(m);
        assert!(names::ALL.contains(&base), "dashboard plots unknown {m}");
    }
    for needed in [
        names::CONNECTIONS_OPEN,
        names::DELIVERIES,
        names::CONNECTIONS_CLOSED,
        names::PUBLISH_TO_WRITE,
        names::HTTP_REQUESTS,
        names::OUTBOX_LAG,
        names::DB_POOL_IN_USE,
    ] {
        assert!(
            used.iter().any(|u| u.starts_with(needed)),
            "the dashboard lacks {needed}"
        );
    }
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(e)) = m.get("expr") {
                out.push(e.clone());
            }
            m.values().for_each(|x| collect_exprs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

#[test]
fn the_local_harness_runs_compose_s_backend_environment() {
    let c = compose();
    let compose_env = env_of(service(&c, "backend"));
    let dir = std::env::temp_dir();
    let site = cluster::BackendSite {
        cluster_id: "x",
        name: "a",
        db_url: "postgres://x",
        port: 1,
        admin_port: 2,
        storage: &dir,
        shared: Some(("127.0.0.1:1", "redis://127.0.0.1:2/")),
    };
    let harness: BTreeMap<&str, String> = cluster::backend_env(&site).into_iter().collect();
    let harness_names: BTreeSet<&str> = harness
        .keys()
        .copied()
        .filter(|k| !cluster::HARNESS_ONLY_VARS.contains(k))
        .collect();
    let compose_names: BTreeSet<&str> = compose_env.keys().map(String::as_str).collect();
    assert_eq!(harness_names, compose_names);
    // Settings that are not addresses or secrets are the same values.
    assert_eq!(
        harness["DISCODEIT_LOG_FORMAT"],
        compose_env["DISCODEIT_LOG_FORMAT"]
    );
}
