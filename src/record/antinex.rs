//! AntiNex REST API predictions (`ANTINEX_PUBLISH_ENABLED=1`): after each snapshot the new
//! rows go to `POST {ANTINEX_URL}/ml/` for a prediction by a pre-trained model, as the
//! original recorder did through antinex-client 1.3.6 (REFERENCE sections 2 and 4):
//!
//! - log in with `POST {ANTINEX_URL}/api-token-auth/` `{"username", "password"}`, which
//!   answers `{"token": ...}`; the token goes in `Authorization: JWT <token>`; a 401 on a job
//!   means the token expired: log in again and send once more;
//! - the body is the request file (ANTINEX_PUBLISH_REQUEST_FILE, a JSON object) with `label`
//!   (ANTINEX_USE_MODEL_NAME), `predict_feature`, `predict_rows`, `publish_to_core`, the
//!   training settings (seed, test_size, batch_size, epochs, num_splits, loss, optimizer,
//!   metrics, histories, ml_type) and, when given, `features_to_process`, `ignore_features`,
//!   `sort_values`, set from the ANTINEX_* variables with antinex-client's defaults;
//! - each row: with ANTINEX_FEATURES_TO_PROCESS, those columns (less the predict feature and
//!   ANTINEX_IGNORE_FEATURES); without, every column of the CSV. Missing cells get
//!   ANTINEX_MISSING_VALUE; values are converted to floats (ANTINEX_CONVERT_DATA, on by
//!   default), and cells that do not convert are left out unless
//!   ANTINEX_INCLUDE_FAILED_CONVERSIONS=1. The predict feature is added with the missing value
//!   (ANTINEX_CHECK_MISSING_PREDICT).
//!
//! Differences from the original, on purpose: each row is sent once (the original sent every
//! row recorded so far at every snapshot); a cell holding 0 stays 0 (antinex-client replaced
//! every falsy value, zeros included, with the missing value); `idx` is in each row.
//!
//! The client is ureq's blocking one, called from the recording thread: two small requests per
//! snapshot at most, so a thread and an async runtime of its own would buy nothing. Failures
//! are logged and counted; recording goes on. Plain `http://` only (no TLS in this build).

use super::csv::Store;
use super::flatten::{CellKind, Rows};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// The ANTINEX_* settings.
#[derive(Clone, Debug)]
pub struct AntinexConfig {
    /// ANTINEX_URL without a trailing `/`; plain `http://` only.
    pub url: String,
    /// ANTINEX_USER, for the token login.
    pub user: String,
    /// ANTINEX_PASSWORD, for the token login.
    pub password: String,
    /// ANTINEX_USE_MODEL_NAME: the request's `label`, naming the trained model.
    pub model_name: String,
    /// ANTINEX_PUBLISH_REQUEST_FILE: a JSON object the request starts from (an unreadable
    /// file is logged and an empty object used).
    pub request_file: PathBuf,
    /// ANTINEX_MISSING_VALUE: what a missing cell becomes (a float when it parses as one and
    /// `convert` is on, else text).
    pub missing_value: String,
    /// ANTINEX_FEATURES_TO_PROCESS: the columns each row keeps; empty: every column.
    pub features: Vec<String>,
    /// ANTINEX_IGNORE_FEATURES: columns left out of `features`.
    pub ignore_features: Vec<String>,
    /// ANTINEX_SORT_VALUES, passed on as `sort_values` when not empty.
    pub sort_values: Vec<String>,
    /// ANTINEX_METRICS, passed on as `metrics`.
    pub metrics: Vec<String>,
    /// ANTINEX_HISTORIES, passed on as `histories`.
    pub histories: Vec<String>,
    /// ANTINEX_PREDICT_FEATURE: the column the model predicts (`label_value`).
    pub predict_feature: String,
    /// ANTINEX_ML_TYPE, passed on as `ml_type` (`classification`).
    pub ml_type: String,
    /// ANTINEX_SEED, passed on as `seed`.
    pub seed: i64,
    /// ANTINEX_TEST_SIZE, passed on as `test_size` (a fraction).
    pub test_size: f64,
    /// ANTINEX_BATCH_SIZE, passed on as `batch_size`.
    pub batch_size: i64,
    /// ANTINEX_EPOCHS, passed on as `epochs`.
    pub epochs: i64,
    /// ANTINEX_NUM_SPLITS, passed on as `num_splits`.
    pub num_splits: i64,
    /// ANTINEX_LOSS, passed on as `loss`.
    pub loss: String,
    /// ANTINEX_OPTIMIZER, passed on as `optimizer`.
    pub optimizer: String,
    /// ANTINEX_CONVERT_DATA (with ANTINEX_CONVERT_DATA_TYPE `float`): cells are sent as
    /// floats; off: as their text (numbers as JSON numbers).
    pub convert: bool,
    /// ANTINEX_INCLUDE_FAILED_CONVERSIONS: a cell that does not convert is sent as text
    /// instead of being left out.
    pub include_failed_conversions: bool,
    /// ANTINEX_PUBLISH_TO_CORE, passed on as `publish_to_core`.
    pub publish_to_core: bool,
    /// ANTINEX_CHECK_MISSING_PREDICT: a row without the predict feature gets it with the
    /// missing value.
    pub check_missing_predict: bool,
    /// Timeout of each HTTP request (30 s; connecting: 10 s).
    pub timeout: Duration,
}

impl AntinexConfig {
    /// From the environment (through `get`, for tests); `None` unless ANTINEX_PUBLISH_ENABLED
    /// is `1`. Errors name the variable.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<AntinexConfig>, String> {
        if get("ANTINEX_PUBLISH_ENABLED").as_deref() != Some("1") {
            return Ok(None);
        }
        let s = |k: &str, d: &str| get(k).unwrap_or_else(|| d.to_string());
        let list = |k: &str| -> Vec<String> {
            get(k)
                .filter(|v| !v.is_empty())
                .map(|v| v.split(',').map(str::to_string).collect())
                .unwrap_or_default()
        };
        let flag = |k: &str, d: &str| s(k, d) == "1";
        fn num<T: std::str::FromStr>(k: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{k}={v:?} is not a number"))
        }
        Ok(Some(AntinexConfig {
            url: s("ANTINEX_URL", "http://localhost:8080")
                .trim_end_matches('/')
                .to_string(),
            user: s("ANTINEX_USER", "root"),
            password: s("ANTINEX_PASSWORD", "123321"),
            model_name: s(
                "ANTINEX_USE_MODEL_NAME",
                "Full-Django-AntiNex-Simple-Scaler-DNN",
            ),
            request_file: PathBuf::from(s(
                "ANTINEX_PUBLISH_REQUEST_FILE",
                "/opt/antinex-client/examples/predict-rows-scaler-full-django.json",
            )),
            missing_value: s("ANTINEX_MISSING_VALUE", "-1.0"),
            features: list("ANTINEX_FEATURES_TO_PROCESS"),
            ignore_features: list("ANTINEX_IGNORE_FEATURES"),
            sort_values: list("ANTINEX_SORT_VALUES"),
            metrics: list("ANTINEX_METRICS"),
            histories: list("ANTINEX_HISTORIES"),
            predict_feature: s("ANTINEX_PREDICT_FEATURE", "label_value"),
            ml_type: s("ANTINEX_ML_TYPE", "classification"),
            seed: num("ANTINEX_SEED", s("ANTINEX_SEED", "42"))?,
            test_size: num("ANTINEX_TEST_SIZE", s("ANTINEX_TEST_SIZE", "0.2"))?,
            batch_size: num("ANTINEX_BATCH_SIZE", s("ANTINEX_BATCH_SIZE", "32"))?,
            epochs: num("ANTINEX_EPOCHS", s("ANTINEX_EPOCHS", "15"))?,
            num_splits: num("ANTINEX_NUM_SPLITS", s("ANTINEX_NUM_SPLITS", "3"))?,
            loss: s("ANTINEX_LOSS", "binary_crossentropy"),
            optimizer: s("ANTINEX_OPTIMIZER", "adam"),
            convert: flag("ANTINEX_CONVERT_DATA", "1")
                && s("ANTINEX_CONVERT_DATA_TYPE", "float") == "float",
            include_failed_conversions: flag("ANTINEX_INCLUDE_FAILED_CONVERSIONS", "0"),
            publish_to_core: flag("ANTINEX_PUBLISH_TO_CORE", "1"),
            check_missing_predict: flag("ANTINEX_CHECK_MISSING_PREDICT", "1"),
            timeout: Duration::from_secs(30),
        }))
    }

    /// The feature columns a row keeps (empty: all).
    fn filter_features(&self) -> Vec<String> {
        self.features
            .iter()
            .filter(|f| **f != self.predict_feature && !self.ignore_features.contains(f))
            .cloned()
            .collect()
    }
}

/// Counters for the exit summary.
#[derive(Default, Debug, Clone, Copy)]
pub struct AntinexCounters {
    /// Prediction jobs the API accepted (200 or 201).
    pub jobs_sent: u64,
    /// Jobs that failed (logged; recording went on).
    pub jobs_failed: u64,
    /// Rows in the accepted jobs.
    pub rows_sent: u64,
    /// Token logins attempted (the first, and one per expired token).
    pub logins: u64,
}

/// The AntiNex REST client of one recording: a login token, the request template and the
/// counters. Blocking; called from the recording thread after each snapshot.
pub struct AntinexClient {
    cfg: AntinexConfig,
    agent: ureq::Agent,
    token: Option<String>,
    base: Map<String, Value>,
    /// What was sent and what failed so far.
    pub counters: AntinexCounters,
}

impl AntinexClient {
    /// A client for `cfg`; reads the request file now (a bad one is logged, not an error).
    /// Nothing is sent until [`AntinexClient::publish`].
    pub fn new(cfg: AntinexConfig) -> AntinexClient {
        let base = match std::fs::read(&cfg.request_file) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                _ => {
                    super::log(format_args!(
                        "antinex: {} is not a JSON object; starting from an empty request",
                        cfg.request_file.display()
                    ));
                    Map::new()
                }
            },
            Err(e) => {
                super::log(format_args!(
                    "antinex: request file {}: {e}; starting from an empty request",
                    cfg.request_file.display()
                ));
                Map::new()
            }
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(cfg.timeout)
            .build();
        AntinexClient {
            cfg,
            agent,
            token: None,
            base,
            counters: AntinexCounters::default(),
        }
    }

    /// The request for `rows` (first row numbered `first_idx`).
    pub fn request(&self, store: &Store, rows: &Rows, first_idx: u64) -> Value {
        let filter = self.cfg.filter_features();
        let all_columns: Vec<String> = if filter.is_empty() {
            store.state.columns.clone()
        } else {
            Vec::new()
        };
        let keep: &[String] = if filter.is_empty() {
            &all_columns
        } else {
            &filter
        };
        let missing = self.missing();
        let mut out = Vec::with_capacity(rows.len());
        for r in 0..rows.len() {
            let mut row = Map::new();
            row.insert("idx".into(), json!(first_idx + r as u64));
            for (name, kind, text) in store.row_values(rows, r) {
                if !keep.iter().any(|k| k == name) {
                    continue;
                }
                if let Some(v) = self.value(kind, text) {
                    row.insert(name.to_string(), v);
                }
            }
            for k in keep {
                if !row.contains_key(k) {
                    // Missing here, or a value that did not convert and is left out: the
                    // original filled both with the missing value.
                    row.insert(k.clone(), missing.clone());
                }
            }
            if self.cfg.check_missing_predict && !row.contains_key(&self.cfg.predict_feature) {
                row.insert(self.cfg.predict_feature.clone(), missing.clone());
            }
            out.push(Value::Object(row));
        }
        let c = &self.cfg;
        let mut body = self.base.clone();
        body.insert("label".into(), json!(c.model_name));
        body.insert("predict_feature".into(), json!(c.predict_feature));
        body.insert("predict_rows".into(), Value::Array(out));
        body.insert("publish_to_core".into(), json!(c.publish_to_core));
        body.insert("seed".into(), json!(c.seed));
        body.insert("test_size".into(), json!(c.test_size));
        body.insert("batch_size".into(), json!(c.batch_size));
        body.insert("epochs".into(), json!(c.epochs));
        body.insert("num_splits".into(), json!(c.num_splits));
        body.insert("loss".into(), json!(c.loss));
        body.insert("optimizer".into(), json!(c.optimizer));
        body.insert("metrics".into(), json!(c.metrics));
        body.insert("histories".into(), json!(c.histories));
        body.insert("ml_type".into(), json!(c.ml_type));
        if !c.sort_values.is_empty() {
            body.insert("sort_values".into(), json!(c.sort_values));
        }
        if !filter.is_empty() {
            body.insert("features_to_process".into(), json!(filter));
        }
        if !c.ignore_features.is_empty() {
            body.insert("ignore_features".into(), json!(c.ignore_features));
        }
        Value::Object(body)
    }

    fn missing(&self) -> Value {
        match self.cfg.missing_value.parse::<f64>() {
            Ok(f) if self.cfg.convert => json!(f),
            _ => json!(self.cfg.missing_value),
        }
    }

    /// A cell as the request carries it; `None` to leave it out (a failed conversion).
    fn value(&self, kind: CellKind, text: &[u8]) -> Option<Value> {
        let s = String::from_utf8_lossy(text);
        if kind == CellKind::Null {
            return Some(self.missing());
        }
        if !self.cfg.convert {
            return Some(match kind {
                CellKind::Number => serde_json::from_str(&s).unwrap_or(json!(s)),
                _ => json!(s),
            });
        }
        let f = match kind {
            CellKind::Bool => Some(if s == "True" { 1.0 } else { 0.0 }),
            CellKind::Number | CellKind::Text => s.trim().parse::<f64>().ok(),
            CellKind::List | CellKind::Null => None,
        };
        match f {
            Some(f) if f.is_finite() => Some(json!(f)),
            _ if self.cfg.include_failed_conversions => Some(json!(s)),
            _ => None,
        }
    }

    /// Sends `rows` for a prediction. Errors are counted and returned for the log.
    pub fn publish(&mut self, store: &Store, rows: &Rows, first_idx: u64) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        let body = self.request(store, rows, first_idx);
        let result = self.send_job(&body);
        match &result {
            Ok(()) => {
                self.counters.jobs_sent += 1;
                self.counters.rows_sent += rows.len() as u64;
            }
            Err(_) => self.counters.jobs_failed += 1,
        }
        result
    }

    fn login(&mut self) -> Result<String, String> {
        let url = format!("{}/api-token-auth/", self.cfg.url);
        self.counters.logins += 1;
        let reply = self
            .agent
            .post(&url)
            .send_json(json!({"username": self.cfg.user, "password": self.cfg.password}))
            .map_err(|e| format!("login at {url} as {:?}: {}", self.cfg.user, describe(e)))?;
        let v: Value = reply
            .into_json()
            .map_err(|e| format!("login at {url}: unreadable answer: {e}"))?;
        let token = v
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("login at {url}: no \"token\" in the answer"))?
            .to_string();
        self.token = Some(token.clone());
        Ok(token)
    }

    fn send_job(&mut self, body: &Value) -> Result<(), String> {
        let url = format!("{}/ml/", self.cfg.url);
        for attempt in 0..2 {
            let token = match self.token.clone() {
                Some(t) => t,
                None => self.login()?,
            };
            match self
                .agent
                .post(&url)
                .set("Authorization", &format!("JWT {token}"))
                .send_json(body)
            {
                Ok(r) if matches!(r.status(), 200 | 201) => return Ok(()),
                Ok(r) => return Err(format!("job at {url}: answer {}", r.status())),
                Err(ureq::Error::Status(401, _)) if attempt == 0 => {
                    // The token expired: log in again and send once more.
                    self.token = None;
                }
                Err(e) => return Err(format!("job at {url}: {}", describe(e))),
            }
        }
        Err(format!("job at {url}: refused (401) after a fresh login"))
    }

    /// The API's base URL (ANTINEX_URL).
    pub fn url(&self) -> &str {
        &self.cfg.url
    }
}

fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, r) => {
            let text = r.into_string().unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            format!("answer {code} {text}")
        }
        ureq::Error::Transport(t) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_defaults_and_disabled() {
        assert!(AntinexConfig::from_env(|_| None).unwrap().is_none());
        let c = AntinexConfig::from_env(|k| (k == "ANTINEX_PUBLISH_ENABLED").then(|| "1".into()))
            .unwrap()
            .unwrap();
        assert_eq!(c.url, "http://localhost:8080");
        assert_eq!(c.missing_value, "-1.0");
        assert!(c.convert && c.publish_to_core && c.check_missing_predict);
        let bad = AntinexConfig::from_env(|k| match k {
            "ANTINEX_PUBLISH_ENABLED" => Some("1".into()),
            "ANTINEX_SEED" => Some("x".into()),
            _ => None,
        });
        assert!(bad.unwrap_err().contains("ANTINEX_SEED"));
    }

    #[test]
    fn filter_drops_predict_and_ignored() {
        let mut c = AntinexConfig::from_env(|k| match k {
            "ANTINEX_PUBLISH_ENABLED" => Some("1".into()),
            "ANTINEX_FEATURES_TO_PROCESS" => Some("a,b,label_value,c".into()),
            "ANTINEX_IGNORE_FEATURES" => Some("c".into()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(c.filter_features(), vec!["a", "b"]);
        c.features.clear();
        assert!(c.filter_features().is_empty());
    }
}
