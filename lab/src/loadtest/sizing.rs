//! How big a run's seed must be: the requests it may issue at most (its warm-up and probe, then
//! k6's), and the users' balance and products' stock that leave none of them refused for want
//! of either.

use super::warm_up::{
    measures_store_limit, warms_up, warms_whole_path, PATH_WARM_UP_MAX_WINDOWS,
    PATH_WARM_UP_WINDOW_SECONDS, STORE_LIMIT_LEVELS, STORE_LIMIT_SECONDS, WARM_UP_SECONDS,
};
use super::{parse_duration, Args, Scenario};
use crate::seed_plan::SeedArgs;

/// An upper bound on the store operations per second of the raw journeys, for sizing the seed.
const RAW_OPS_PER_SECOND_BOUND: f64 = 1_500.0;

/// The store operations the preamble issues at most, for sizing the seed.
fn preamble_requests(args: &Args) -> f64 {
    let mut seconds = 0;
    if warms_up(args.scenario) {
        seconds += WARM_UP_SECONDS;
    }
    if measures_store_limit(args.scenario) {
        seconds += STORE_LIMIT_SECONDS * STORE_LIMIT_LEVELS.len() as u64;
    }
    let path = if warms_whole_path(args.scenario) {
        let longest = PATH_WARM_UP_MAX_WINDOWS as f64 * PATH_WARM_UP_WINDOW_SECONDS as f64;
        longest * f64::from(args.rate.unwrap_or(200))
    } else {
        0.0
    };
    seconds as f64 * RAW_OPS_PER_SECOND_BOUND + path
}

/// How many requests a run may issue at most, for sizing the seed.
pub(super) fn planned_requests(args: &Args) -> f64 {
    preamble_requests(args) + planned_k6_requests(args)
}

/// How many requests the k6 run may issue at most.
fn planned_k6_requests(args: &Args) -> f64 {
    let env = |key: &str, default: f64| {
        args.extra_env
            .iter()
            .find(|(name, _)| name == key)
            .and_then(|(_, value)| value.parse::<f64>().ok())
            .unwrap_or(default)
    };
    let seconds = |text: &str| parse_duration(text).map_or(0.0, |duration| duration.as_secs_f64());
    match args.scenario {
        Scenario::Stress => {
            let (start, step, max) = (
                env("START_RATE", 100.0),
                env("STEP", 100.0),
                env("MAX_RATE", 1_500.0),
            );
            let step_seconds = args
                .extra_env
                .iter()
                .find(|(name, _)| name == "STEP_DURATION")
                .map_or(30.0, |(_, value)| seconds(value));
            let mut rate = start;
            let mut total = 0.0;
            while rate <= max {
                total += rate * step_seconds;
                rate += step;
            }
            total
        }
        Scenario::Spike => {
            // The baseline runs throughout (30 s + 40 s of surge + 60 s); the surge's closed-loop
            // users can go no faster than the service, bounded here by the store's limit.
            let base = f64::from(args.rate.unwrap_or(100));
            base * 130.0 + RAW_OPS_PER_SECOND_BOUND * 40.0
        }
        Scenario::FlashSale | Scenario::Bench => 0.0,
        _ => {
            let rate = f64::from(args.rate.unwrap_or(200));
            let duration = args
                .duration
                .clone()
                .unwrap_or_else(|| args.scenario.default_duration().to_owned());
            rate * seconds(&duration)
        }
    }
}

/// The seed a run needs: with 3.1 requests per journey, 1.5 order lines of one unit each,
/// and prices up to 50,000 KRW, every user and product gets twice its expected share so that
/// no run fails for lack of balance or stock.
pub(crate) fn seed_for(requests: f64) -> SeedArgs {
    let defaults = SeedArgs {
        users: 1_000,
        products: 100,
        balance: 1_000_000,
        stock: 1_000,
        flash_stock: 50,
    };
    let journeys = requests / 3.1;
    let units = journeys * 1.5;
    let stock = (2.0 * units / f64::from(defaults.products)).ceil() as i64;
    let balance = (2.0 * units * 50_000.0 / f64::from(defaults.users)).ceil() as i64;
    SeedArgs {
        stock: stock.max(defaults.stock),
        balance: balance.max(defaults.balance),
        ..defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_grows_with_the_run() {
        let small = seed_for(20.0 * 20.0);
        assert_eq!((small.balance, small.stock), (1_000_000, 1_000));
        let soak = seed_for(200.0 * 3_600.0);
        assert!(soak.stock >= 2 * 232_000 * 3 / 2 / 100);
        assert!(soak.balance > 1_000_000);
    }
}
