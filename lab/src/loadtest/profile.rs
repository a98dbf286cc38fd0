//! Which defaults k6 runs with: the local stack's figures, or a deployed stage's (half its
//! stage throttle, a looser p95, retries of refused requests).

use super::{Args, Scenario};
use crate::target::is_loopback_url;

/// Which defaults k6 runs with (k6/lib/config.js, `PROFILE`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// The local stack: 200 req/s, p95 < 25 ms, no retries.
    Local,
    /// A deployed stage: half its `ApiThrottleRate` (50 req/s when unknown), p95 < 500 ms, two
    /// retries of a throttled or refused request.
    Stage,
}

/// The share of a stage's throttle (`ApiThrottleRate`) that a run offers: API Gateway's token
/// bucket refuses what arrives faster than the rate once the burst is spent, and k6's arrivals
/// are not perfectly even, so a run at the full rate would be throttled by its own jitter.
const STAGE_THROTTLE_SHARE: f64 = 0.5;
/// The template's default `ApiThrottleRate`, for a stage whose parameters are not known.
const DEFAULT_STAGE_THROTTLE: f64 = 100.0;

impl Profile {
    /// The stage profile for a run away from this machine's stack: a deployed stack, or any
    /// URL that is not on this machine.
    pub(super) fn for_run(args: &Args, base_url: &str) -> Self {
        match args.profile {
            Some(profile) => profile,
            None if args.remote.stack.is_some() || !is_loopback_url(base_url) => Profile::Stage,
            None => Profile::Local,
        }
    }
}

/// The k6 variables of a profile. The stage profile sets `PROFILE=stage` (k6's stage defaults:
/// p95 < 500 ms, two retries) and, unless `--rate` says otherwise, the rate of the scenarios
/// that hold one: half the stage's throttle (smoke keeps its 20 req/s when that is lower).
pub(super) fn profile_env(
    profile: Profile,
    scenario: Scenario,
    rate_given: bool,
    throttle: Option<f64>,
) -> Vec<(String, String)> {
    if profile == Profile::Local {
        return Vec::new();
    }
    let mut env = vec![("PROFILE".to_owned(), "stage".to_owned())];
    let rate = (throttle.unwrap_or(DEFAULT_STAGE_THROTTLE) * STAGE_THROTTLE_SHARE)
        .floor()
        .max(1.0);
    let rate_variable = match scenario {
        Scenario::Load | Scenario::Soak => Some("RATE"),
        Scenario::Smoke if rate < 20.0 => Some("RATE"),
        Scenario::Spike => Some("BASE_RATE"),
        _ => None,
    };
    if let (Some(variable), false) = (rate_variable, rate_given) {
        env.push((variable.to_owned(), format!("{rate:.0}")));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_run_offers_half_its_throttle_and_local_runs_are_untouched() {
        let env = |profile, scenario, rate_given, throttle| -> Vec<(String, String)> {
            profile_env(profile, scenario, rate_given, throttle)
        };
        let pairs = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect()
        };
        assert!(env(Profile::Local, Scenario::Load, false, Some(100.0)).is_empty());
        assert_eq!(
            env(Profile::Stage, Scenario::Load, false, Some(100.0)),
            pairs(&[("PROFILE", "stage"), ("RATE", "50")])
        );
        assert_eq!(
            env(Profile::Stage, Scenario::Soak, false, Some(1_000.0)),
            pairs(&[("PROFILE", "stage"), ("RATE", "500")])
        );
        // Unknown throttle: the template's default, 100 req/s.
        assert_eq!(
            env(Profile::Stage, Scenario::Spike, false, None),
            pairs(&[("PROFILE", "stage"), ("BASE_RATE", "50")])
        );
        // --rate wins; smoke keeps its 20 req/s unless the throttle is below 40.
        assert_eq!(
            env(Profile::Stage, Scenario::Load, true, Some(100.0)),
            pairs(&[("PROFILE", "stage")])
        );
        assert_eq!(
            env(Profile::Stage, Scenario::Smoke, false, Some(100.0)),
            pairs(&[("PROFILE", "stage")])
        );
        assert_eq!(
            env(Profile::Stage, Scenario::Smoke, false, Some(10.0)),
            pairs(&[("PROFILE", "stage"), ("RATE", "5")])
        );
        // Stress finds the knee by design: its steps stay as asked.
        assert_eq!(
            env(Profile::Stage, Scenario::Stress, false, Some(100.0)),
            pairs(&[("PROFILE", "stage")])
        );
    }
}
