//! The binary's command line: `--help` lists the configuration, invalid configuration is one
//! clear line on stderr and exit code 2.

use std::process::Command;

fn run(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_discodeit"));
    cmd.env_clear().args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run discodeit")
}

#[test]
fn help_lists_every_variable() {
    let out = run(&[], &["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for var in [
        "DISCODEIT_ADDR",
        "DATABASE_URL",
        "SECURITY_JWT_SECRET",
        "SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS",
        "SECURITY_JWT_REFRESH_TOKEN_VALIDITY_SECONDS",
        "DISCODEIT_STORAGE_DIR",
        "DISCODEIT_WEB_DIR",
        "DISCODEIT_INSTANCE_ID",
        "DISCODEIT_ADMIN_USERNAME",
        "DISCODEIT_ADMIN_EMAIL",
        "DISCODEIT_ADMIN_PASSWORD",
        "REDIS_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "RUST_LOG",
    ] {
        assert!(text.contains(var), "--help misses {var}");
    }
    // ... and everything the server reads (config::KNOWN_VARS), which README's table lists too.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("## Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README's Configuration section");
    for var in discodeit::config::KNOWN_VARS {
        assert!(text.contains(var.name), "--help misses {}", var.name);
        assert!(
            table.contains(&format!("`{}`", var.name)),
            "README's configuration table misses {}",
            var.name
        );
    }
}

#[test]
fn invalid_configuration_exits_2_with_one_line() {
    let secret = "0123456789abcdef0123456789abcdef";
    for (env, needle) in [
        (vec![("SECURITY_JWT_SECRET", secret)], "DATABASE_URL"),
        (
            vec![
                ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("SECURITY_JWT_SECRET", "short"),
            ],
            "32 bytes",
        ),
        (
            vec![
                ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("SECURITY_JWT_SECRET", secret),
                ("DISCODEIT_ADDR", "not-an-address"),
            ],
            "DISCODEIT_ADDR",
        ),
        (
            vec![
                ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("SECURITY_JWT_SECRET", secret),
                ("SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS", "ten"),
            ],
            "SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS",
        ),
    ] {
        let out = run(&env, &[]);
        assert_eq!(out.status.code(), Some(2), "exit code for {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(needle), "{err}");
    }
    let out = run(&[], &["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
}
