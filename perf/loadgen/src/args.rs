//! `--key value` command-line options, without a parser dependency.

use std::collections::HashMap;
use std::str::FromStr;

/// Parsed `--key value` pairs; it exists so every option has one place that reads it.
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Reads `--key value` pairs; anything else is an error.
    pub fn parse(raw: &[String]) -> Result<Self, String> {
        let mut values = HashMap::new();
        let mut it = raw.iter();
        while let Some(k) = it.next() {
            let key = k
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --option, got {k:?}"))?;
            let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            values.insert(key.to_string(), v.clone());
        }
        Ok(Args { values })
    }

    /// The option as text, or `default`.
    pub fn text(&self, key: &str, default: &str) -> String {
        self.values
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    /// The option parsed as `T`, or `default`.
    pub fn num<T: FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.values.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{key}: cannot parse {v:?}")),
        }
    }

    /// A comma-separated list of numbers (`--rate 10,50`).
    pub fn list<T: FromStr>(&self, key: &str, default: &str) -> Result<Vec<T>, String> {
        self.text(key, default)
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|_| format!("--{key}: cannot parse {s:?}"))
            })
            .collect()
    }
}
