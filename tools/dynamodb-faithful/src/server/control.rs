//! The control API, `/_faithful/...`: the stats, the faults and the settings, read and changed
//! over HTTP while the proxy serves.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;

use super::{locked, Shared};
use crate::faults::Faults;
use crate::protocol;

impl Shared {
    /// `/_faithful/...`: the stats, the faults and the settings, read and changed over HTTP.
    pub(super) fn control(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let ok = |value: Value| protocol::respond(StatusCode::OK, &value);
        let bad = |message: String| {
            protocol::respond(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": message }),
            )
        };
        match (method.as_str(), path.trim_end_matches('/')) {
            ("GET", "/_faithful/stats") => {
                ok(serde_json::to_value(self.summary()).unwrap_or_default())
            }
            ("GET", "/_faithful/stats.txt") => {
                let text = self.summary().render(10);
                let mut response = Response::new(Full::new(Bytes::from(text)));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
            ("POST", "/_faithful/stats/reset") => {
                self.stats.reset();
                ok(serde_json::json!({}))
            }
            ("GET", "/_faithful/faults") => {
                ok(serde_json::to_value(locked(&self.faults).clone()).unwrap_or_default())
            }
            ("PUT", "/_faithful/faults") => match serde_json::from_slice::<Faults>(body) {
                Ok(faults) => {
                    *locked(&self.faults) = faults.clone();
                    ok(serde_json::to_value(faults).unwrap_or_default())
                }
                Err(error) => bad(format!("not a faults document: {error}")),
            },
            ("GET", "/_faithful/settings") => ok(self.settings_value()),
            ("PUT", "/_faithful/settings") => match serde_json::from_slice::<SettingsPatch>(body) {
                Ok(patch) => {
                    if let Some(hold) = patch.hold_ms {
                        self.hold_ms.store(hold, Ordering::Relaxed);
                    }
                    if patch.partition_wcu.is_some() || patch.partition_rcu.is_some() {
                        let mut limits = self.capacity.limits();
                        if let Some(wcu) = patch.partition_wcu {
                            limits.write_units_per_second = wcu;
                        }
                        if let Some(rcu) = patch.partition_rcu {
                            limits.read_units_per_second = rcu;
                        }
                        self.capacity.set_limits(limits);
                    }
                    ok(self.settings_value())
                }
                Err(error) => bad(format!("not a settings document: {error}")),
            },
            _ => protocol::respond(
                StatusCode::NOT_FOUND,
                &serde_json::json!({
                    "error": "unknown control path",
                    "paths": ["GET /_faithful/stats", "GET /_faithful/stats.txt",
                              "POST /_faithful/stats/reset", "GET|PUT /_faithful/faults",
                              "GET|PUT /_faithful/settings"]
                }),
            ),
        }
    }

    fn settings_value(&self) -> Value {
        let limits = self.capacity.limits();
        serde_json::json!({
            "holdMs": self.hold_ms.load(Ordering::Relaxed),
            "partitionWcu": limits.write_units_per_second,
            "partitionRcu": limits.read_units_per_second,
        })
    }
}

/// The runtime-changeable settings, as `PUT /_faithful/settings` takes them (every field
/// optional).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsPatch {
    hold_ms: Option<u64>,
    partition_wcu: Option<f64>,
    partition_rcu: Option<f64>,
}
