//! Layered configuration: embedded defaults < file (`--config`) < `THROUGHLINE__SECTION__KEY`
//! environment < command-line overrides, then validation.
//!
//! Environment beats the file so that Helm values and Kubernetes Secrets, which arrive as
//! environment variables, win over a baked-in file.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

pub use config::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Prefix of every environment variable the configuration reads.
pub const ENV_PREFIX: &str = "THROUGHLINE";

/// Where configuration comes from, besides the embedded defaults.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// A TOML or YAML file (`--config`).
    pub file: Option<PathBuf>,
    /// The environment to read; `None` reads the process environment. Tests pass a map.
    pub env: Option<HashMap<String, String>>,
    /// Values from command-line flags, by key: the highest precedence.
    pub overrides: Vec<(String, Value)>,
    /// Keys whose environment value is a comma-separated list (e.g. `server.services`).
    pub list_keys: Vec<&'static str>,
}

/// A configuration that could not be loaded or is not valid. The message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn invalid(key: &str, problem: impl fmt::Display) -> Self {
        Self(format!("{key}: {problem}"))
    }
}

/// Implemented by every configuration section: checks what types alone cannot.
pub trait Validate {
    /// Returns every problem found, each prefixed with the full key it concerns.
    fn validate(&self, prefix: &str) -> Vec<String>;
}

/// Loads `T` from the embedded `defaults` (TOML) and the given sources.
pub fn load<T: DeserializeOwned>(defaults: &str, sources: &Sources) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(defaults, config::FileFormat::Toml));
    if let Some(path) = &sources.file {
        if !path.exists() {
            return Err(ConfigError(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        builder = builder.add_source(config::File::from(path.as_path()));
    }
    let mut env = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(sources.env.clone());
    if !sources.list_keys.is_empty() {
        env = env.list_separator(",");
        for key in &sources.list_keys {
            env = env.with_list_parse_key(key);
        }
    }
    builder = builder.add_source(env);
    for (key, value) in &sources.overrides {
        builder = builder
            .set_override(key.as_str(), value.clone())
            .map_err(|e| ConfigError::invalid(key, e))?;
    }
    let merged = builder.build().map_err(|e| ConfigError(e.to_string()))?;
    merged
        .try_deserialize()
        .map_err(|e| ConfigError(e.to_string()))
}

/// Turns the problems collected by [`Validate`] into one error, or none.
pub fn check(problems: Vec<String>) -> Result<(), ConfigError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError(problems.join("; ")))
    }
}

/// A secret value: readable by the code that needs it, never printed or logged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "[redacted]"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { "[redacted]" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Reads an optional value where an empty string means unset: that is how an unset Helm
/// value or an emptied environment variable arrives.
pub fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let value: Option<String> = Option::deserialize(deserializer)?;
    match value.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Hides the password of a `scheme://user:password@host/…` URL for display.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:[redacted]@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Example {
        server: ExampleServer,
    }

    #[derive(Debug, Deserialize)]
    struct ExampleServer {
        port: u16,
        names: Vec<String>,
        token: Secret,
    }

    const DEFAULTS: &str = "[server]\nport = 1\nnames = [\"a\"]\ntoken = \"\"\n";

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn env_beats_file_and_flags_beat_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[server]\nport = 2\ntoken = \"from-file\"\n").unwrap();
        let mut sources = Sources {
            file: Some(file),
            env: env(&[
                ("THROUGHLINE__SERVER__PORT", "3"),
                ("THROUGHLINE__SERVER__NAMES", "x,y"),
            ]),
            list_keys: vec!["server.names"],
            ..Sources::default()
        };
        let loaded: Example = load(DEFAULTS, &sources).unwrap();
        assert_eq!(loaded.server.port, 3);
        assert_eq!(loaded.server.names, ["x", "y"]);
        assert_eq!(loaded.server.token.expose(), "from-file");

        sources.overrides = vec![("server.port".into(), 4.into())];
        let loaded: Example = load(DEFAULTS, &sources).unwrap();
        assert_eq!(loaded.server.port, 4);
    }

    #[test]
    fn a_malformed_value_names_its_key() {
        let sources = Sources {
            env: env(&[("THROUGHLINE__SERVER__PORT", "not-a-port")]),
            ..Sources::default()
        };
        let error = load::<Example>(DEFAULTS, &sources).unwrap_err().to_string();
        assert!(error.contains("server.port"), "{error}");
    }

    #[test]
    fn secrets_and_passwords_are_redacted() {
        assert_eq!(format!("{:?}", Secret::new("s3cr3t")), "[redacted]");
        assert_eq!(
            serde_json::to_string(&Secret::new("s3cr3t")).unwrap(),
            "\"[redacted]\""
        );
        assert_eq!(
            redact_url_password("postgres://app:hunter2@db:5432/x"),
            "postgres://app:[redacted]@db:5432/x"
        );
        assert_eq!(
            redact_url_password("sqlite://data/x.db"),
            "sqlite://data/x.db"
        );
    }
}
