//! Configuration from environment variables, read once at Lambda init, with errors that name
//! the variable and what is wrong with it.

use thiserror::Error;

use crate::domain::jobs::RetrySchedule;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set")]
    Missing { name: &'static str },
    #[error("environment variable {name} is not valid: {reason}")]
    Invalid {
        name: &'static str,
        reason: &'static str,
    },
}

/// Where each function finds its AWS resources. The AWS SDK itself reads the usual
/// `AWS_REGION`, credentials and `AWS_ENDPOINT_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TABLE_NAME`: the one DynamoDB table.
    pub table_name: String,
    /// `JOB_QUEUE_URL`: the worker's SQS queue.
    pub job_queue_url: String,
    /// `SECRET_PREFIX`: per-tenant secrets live under `{prefix}/{tenant}/{environment}`.
    pub secret_prefix: String,
    /// `RAZORPAY_API_URL`, default Razorpay's production API.
    pub razorpay_api_url: String,
    /// `FLEXPRICE_API_URL`, default Flexprice Cloud.
    pub flexprice_api_url: String,
    /// How failed jobs wait before their next try; `RETRY_SCALE` (a whole number, default 1)
    /// divides every wait, for a local run of the same schedule.
    pub retry: RetrySchedule,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the config from any lookup, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &'static str| -> Result<String, ConfigError> {
            match lookup(name) {
                None => Err(ConfigError::Missing { name }),
                Some(v) if v.trim().is_empty() => Err(ConfigError::Invalid {
                    name,
                    reason: "it is empty",
                }),
                Some(v) => Ok(v),
            }
        };
        let secret_prefix = lookup("SECRET_PREFIX").unwrap_or_else(|| "flexrzp".to_owned());
        if secret_prefix.is_empty()
            || !secret_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
        {
            return Err(ConfigError::Invalid {
                name: "SECRET_PREFIX",
                reason: "use letters, digits and /_+=.@- only",
            });
        }
        let url = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let value = lookup(name).unwrap_or_else(|| default.to_owned());
            if value.starts_with("https://") || value.starts_with("http://") {
                Ok(value.trim_end_matches('/').to_owned())
            } else {
                Err(ConfigError::Invalid {
                    name,
                    reason: "it must be an http(s) URL",
                })
            }
        };
        let scale = match lookup("RETRY_SCALE") {
            None => 1,
            Some(text) => {
                text.parse::<u32>()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or(ConfigError::Invalid {
                        name: "RETRY_SCALE",
                        reason: "it must be a whole number of at least 1",
                    })?
            }
        };
        Ok(Config {
            table_name: required("TABLE_NAME")?,
            job_queue_url: required("JOB_QUEUE_URL")?,
            secret_prefix: secret_prefix.trim_end_matches('/').to_owned(),
            razorpay_api_url: url(
                "RAZORPAY_API_URL",
                crate::adapters::razorpay::DEFAULT_BASE_URL,
            )?,
            flexprice_api_url: url(
                "FLEXPRICE_API_URL",
                crate::adapters::flexprice::DEFAULT_BASE_URL,
            )?,
            retry: RetrySchedule::PRODUCTION.scaled(scale),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn reads_required_and_defaults() {
        let config = from(&[("TABLE_NAME", "t"), ("JOB_QUEUE_URL", "http://q")]).unwrap();
        assert_eq!(config.table_name, "t");
        assert_eq!(config.secret_prefix, "flexrzp");
        assert_eq!(config.razorpay_api_url, "https://api.razorpay.com");
        assert_eq!(config.flexprice_api_url, "https://api.cloud.flexprice.io");
        assert_eq!(config.retry, RetrySchedule::PRODUCTION);
        let config = from(&[
            ("TABLE_NAME", "t"),
            ("JOB_QUEUE_URL", "q"),
            ("SECRET_PREFIX", "prod/flexrzp/"),
        ])
        .unwrap();
        assert_eq!(config.secret_prefix, "prod/flexrzp");
    }

    #[test]
    fn errors_name_the_variable() {
        let err = from(&[("JOB_QUEUE_URL", "q")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable TABLE_NAME is not set"
        );
        let err = from(&[("TABLE_NAME", " "), ("JOB_QUEUE_URL", "q")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable TABLE_NAME is not valid: it is empty"
        );
        let err = from(&[
            ("TABLE_NAME", "t"),
            ("JOB_QUEUE_URL", "q"),
            ("SECRET_PREFIX", "a b"),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "SECRET_PREFIX",
                ..
            }
        ));
        let err = from(&[
            ("TABLE_NAME", "t"),
            ("JOB_QUEUE_URL", "q"),
            ("RETRY_SCALE", "0"),
        ])
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "RETRY_SCALE",
                ..
            }
        ));
    }
}
