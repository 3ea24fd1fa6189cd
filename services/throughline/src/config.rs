//! The whole configuration of a `throughline` process.

use serde::{Deserialize, Serialize};
use throughline_runtime::auth::AuthOptions;
use throughline_runtime::config::{self, ConfigError, Sources, Validate};
use throughline_runtime::db::DatabaseOptions;
use throughline_runtime::events::EventsOptions;
use throughline_runtime::server::ServerOptions;
use throughline_runtime::telemetry::TelemetryOptions;

use crate::services::SERVICES;

/// The embedded defaults, the lowest layer of every configuration.
pub const DEFAULTS: &str = include_str!("defaults.toml");

/// Every service this binary can run, in start order.
pub const ALL_SERVICES: [&str; 5] = [
    SERVICES[0].name,
    SERVICES[1].name,
    SERVICES[2].name,
    SERVICES[3].name,
    SERVICES[4].name,
];

/// `[endpoints]`: where the services this process does not host run (`http://host:port` or
/// `https://…`); empty when not deployed. Services hosted here are reached in-process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    #[serde(default, deserialize_with = "config::empty_as_none")]
    pub profile: Option<String>,
    #[serde(default, deserialize_with = "config::empty_as_none")]
    pub interaction: Option<String>,
    #[serde(default, deserialize_with = "config::empty_as_none")]
    pub feedback: Option<String>,
    #[serde(default, deserialize_with = "config::empty_as_none")]
    pub orchestration: Option<String>,
    #[serde(default, deserialize_with = "config::empty_as_none")]
    pub distribution: Option<String>,
}

impl Endpoints {
    /// The configured endpoints by service name.
    pub fn by_service(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("profile", &self.profile),
            ("interaction", &self.interaction),
            ("feedback", &self.feedback),
            ("orchestration", &self.orchestration),
            ("distribution", &self.distribution),
        ]
        .into_iter()
        .filter_map(|(name, endpoint)| Some((name.to_owned(), endpoint.clone()?)))
        .collect()
    }
}

impl Validate for Endpoints {
    fn validate(&self, prefix: &str) -> Vec<String> {
        self.by_service()
            .into_iter()
            .filter(|(_, endpoint)| {
                !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                    || endpoint.parse::<http::Uri>().is_err()
            })
            .map(|(name, _)| format!("{prefix}.{name}: must be an http:// or https:// URL"))
            .collect()
    }
}

/// Configuration keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 2] = ["server.services", "auth.public_key_files"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerOptions,
    pub telemetry: TelemetryOptions,
    pub database: DatabaseOptions,
    pub events: EventsOptions,
    pub auth: AuthOptions,
    pub endpoints: Endpoints,
    pub profile: throughline_profile::Options,
    pub interaction: throughline_interaction::Options,
    pub feedback: throughline_feedback::Options,
    pub orchestration: throughline_orchestration::Options,
    pub distribution: throughline_distribution::Options,
}

impl Config {
    /// Loads and validates the configuration from `sources` over the embedded defaults.
    pub fn load(mut sources: Sources) -> Result<Self, ConfigError> {
        sources.list_keys.extend(LIST_KEYS);
        let config: Self = config::load(DEFAULTS, &sources)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = self.server.validate("server");
        for (index, name) in self.server.services.iter().enumerate() {
            if !ALL_SERVICES.contains(&name.as_str()) {
                problems.push(format!(
                    "server.services[{index}]: unknown service {name:?} (expected one of {})",
                    ALL_SERVICES.join(", ")
                ));
            }
        }
        problems.extend(self.telemetry.validate("telemetry"));
        problems.extend(self.database.validate("database"));
        problems.extend(self.events.validate("events"));
        problems.extend(self.auth.validate("auth"));
        problems.extend(self.endpoints.validate("endpoints"));
        problems.extend(self.feedback.validate("feedback"));
        problems.extend(self.distribution.validate("distribution"));
        config::check(problems)
    }

    /// The configuration as TOML, with secrets and passwords redacted.
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}
