//! The deployment files: compose.yaml validated by `docker-compose config` (no Docker engine
//! runs here) and checked for the contract's shape; the nginx template rendered for every
//! strategy and checked by `nginx -t`.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// `docker-compose config` of compose.yaml, as JSON (through PyYAML, which docker-compose
/// itself depends on).
fn compose_config(env: &[(&str, &str)]) -> Result<Value, String> {
    ensure("docker-compose", "docker-compose");
    let mut cmd = Command::new("bash");
    // Only .env.example's settings (plus `env`): not the caller's environment or a local .env.
    cmd.current_dir(repo())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args([
            "-c",
            "set -o pipefail; docker-compose --env-file .env.example -f compose.yaml config | \
         python3 -c 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'",
        ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[test]
fn compose_file_is_valid_and_shaped_like_the_contract() {
    let c = compose_config(&[]).expect("docker-compose config");
    // The services that start without a profile.
    let services: serde_json::Map<String, Value> = c["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| !s["profiles"].is_array())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let services = &services;
    let mut names: Vec<&str> = services.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["backend", "kafka", "nginx", "postgres", "redis"]);

    // Port 3000 on nginx is the only published port.
    for (name, s) in services {
        let ports = s["ports"].as_array().map(|p| p.len()).unwrap_or(0);
        if name == "nginx" {
            assert_eq!(ports, 1);
            let p = &s["ports"][0];
            let published = p["published"]
                .as_str()
                .map(str::to_string)
                .or(p["published"].as_u64().map(|n| n.to_string()));
            assert_eq!(published.as_deref(), Some("3000"), "{p}");
        } else {
            assert_eq!(ports, 0, "{name} publishes a port");
            assert_eq!(
                s["networks"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .collect::<Vec<_>>(),
                ["internal"],
                "{name} networks"
            );
        }
        assert!(
            s["healthcheck"].is_object() || name == "nginx",
            "{name} has no healthcheck"
        );
    }
    assert_eq!(c["networks"]["internal"]["internal"], true);

    let backend = &services["backend"];
    assert_eq!(backend["deploy"]["replicas"], 3);
    assert_eq!(backend["build"]["dockerfile"], "Dockerfile");
    assert!(backend["healthcheck"]["test"]
        .to_string()
        .contains("/actuator/health"));
    for dep in ["postgres", "redis", "kafka"] {
        assert_eq!(
            backend["depends_on"][dep]["condition"], "service_healthy",
            "backend -> {dep}"
        );
    }
    let env = &backend["environment"];
    assert_eq!(env["REDIS_URL"], "redis://redis:6379/");
    assert_eq!(env["KAFKA_BOOTSTRAP_SERVERS"], "kafka:9092");
    assert!(
        backend["volumes"].to_string().contains("/data/storage"),
        "shared file storage"
    );

    let nginx = &services["nginx"];
    assert_eq!(nginx["build"]["dockerfile"], "nginx/Dockerfile");
    assert_eq!(
        nginx["depends_on"]["backend"]["condition"],
        "service_healthy"
    );
    assert_eq!(nginx["environment"]["LB_STRATEGY"], "round_robin");
    assert_eq!(
        services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"],
        "broker,controller"
    );
    for v in ["pgdata", "redisdata", "kafkadata", "storage"] {
        assert!(c["volumes"][v].is_object(), "volume {v}");
    }

    // The strategy is one variable away.
    let c = compose_config(&[("LB_STRATEGY", "ip_hash")]).unwrap();
    assert_eq!(
        c["services"]["nginx"]["environment"]["LB_STRATEGY"],
        "ip_hash"
    );
}

#[test]
fn dockerfiles_are_multi_stage_and_check_health() {
    let backend = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert_eq!(
        backend.matches("\nFROM ").count() + backend.starts_with("FROM ") as usize,
        2
    );
    assert!(backend.contains("HEALTHCHECK") && backend.contains("/actuator/health"));
    let nginx = std::fs::read_to_string(repo().join("nginx/Dockerfile")).unwrap();
    assert!(nginx.contains("npm run build") && nginx.contains("/usr/share/nginx/html"));
    assert!(nginx.contains("/etc/nginx/templates/") && nginx.contains("/docker-entrypoint.d/"));
}

/// Renders the template for `strategy` and runs `nginx -t` on it.
fn nginx_test(strategy: &str) -> Result<String, String> {
    ensure("nginx", "nginx-light");
    ensure("envsubst", "gettext-base");
    let dir = std::env::temp_dir().join(format!(
        "discodeit-nginx-t-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let conf = dir.join("conf.d/default.conf");
    let out = Command::new("sh")
        .arg(repo().join("nginx/render.sh"))
        .arg(&conf)
        .env("LB_STRATEGY", strategy)
        .env(
            "BACKEND_SERVERS",
            "127.0.0.1:8081 127.0.0.1:8082 127.0.0.1:8083",
        )
        .output()
        .unwrap();
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let d = dir.display();
    // The image's main config (limits, log format), paths moved into `dir`.
    std::fs::write(dir.join("nginx.conf"), cluster::nginx_main_conf(&dir)).unwrap();
    let t = Command::new("nginx")
        .args([
            "-t",
            "-p",
            &d.to_string(),
            "-c",
            &format!("{d}/nginx.conf"),
            "-e",
            &format!("{d}/error.log"),
        ])
        .output()
        .unwrap();
    let rendered = std::fs::read_to_string(&conf).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    if t.status.success() {
        Ok(rendered)
    } else {
        Err(String::from_utf8_lossy(&t.stderr).into_owned())
    }
}

#[test]
fn nginx_config_is_valid_for_every_strategy() {
    let rr = nginx_test("round_robin").unwrap();
    assert!(rr.contains("listen 3000;"));
    assert!(rr.contains("add_header X-Upstream-Addr $upstream_addr always;"));
    assert!(
        rr.contains("root /usr/share/nginx/html;")
            && rr.contains("try_files $uri $uri/ /index.html;")
    );
    assert!(rr.contains("hash $sockjs_session consistent;"));
    assert!(!rr.contains("least_conn;") && !rr.contains("ip_hash;"));
    assert!(nginx_test("least_conn").unwrap().contains("least_conn;"));
    assert!(nginx_test("ip_hash").unwrap().contains("ip_hash;"));
    let w = nginx_test("weight").unwrap();
    assert!(
        w.contains("server 127.0.0.1:8081 weight=3")
            && w.contains("server 127.0.0.1:8083 weight=1")
    );
    // Every proxied request carries nginx's request id; probes and metrics stay inside.
    assert!(rr.contains("proxy_set_header X-Request-Id $request_id;"));
    assert!(rr.contains("location /actuator/ {\n        return 404;"));
    let err = nginx_test("random_guess").unwrap_err();
    assert!(err.contains("unknown LB_STRATEGY"), "{err}");
}
