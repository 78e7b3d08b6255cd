//! How many replicas a group should have, in the style of Knative's KPA: a stable window and a
//! panic window over the observed load, desired = ceil(observed / target), rate limits, a
//! scale-down delay and the group's bounds; several policies give the largest recommendation (as
//! Kubernetes' HPA does). Pure: time is passed in, so it is tested on simulated traces.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The autoscaler's settings (flags of `nucleus scheduler` and `nucleus dev`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The window averaged for ordinary decisions.
    pub stable_window: Duration,
    /// The short window that reacts to bursts.
    pub panic_window: Duration,
    /// How long a group that may rest at zero waits, after a stable window without traffic, before
    /// its last replica goes.
    pub scale_to_zero_grace: Duration,
    /// Scale-downs wait until every recommendation over this long agreed to them.
    pub scale_down_delay: Duration,
    /// Panic mode starts when the panic window asks for this many times the ready replicas.
    pub panic_threshold: f64,
    /// At most this many times the current replicas in one step up (at least one more).
    pub max_scale_up_rate: f64,
    /// At least the current replicas divided by this after one step down.
    pub max_scale_down_rate: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            stable_window: Duration::from_secs(60),
            panic_window: Duration::from_secs(6),
            scale_to_zero_grace: Duration::from_secs(30),
            scale_down_delay: Duration::ZERO,
            panic_threshold: 2.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
        }
    }
}

/// What one second of a group's load looked like. `values[i]` is policy i's total over the
/// group (summed over gateways and replicas); `None` when it could not be measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    pub values: Vec<Option<f64>>,
    /// Requests held by gateways (the activator) while no replica was ready.
    pub queued: u32,
    /// Any request arrived, was in flight or was held.
    pub active: bool,
}

/// The group as it stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Group {
    /// Replicas asked for now.
    pub current: u32,
    /// Of those, ready.
    pub ready: u32,
    pub min: u32,
    pub max: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub desired: u32,
    pub panicking: bool,
    /// For events and logs: what the decision rests on.
    pub reason: String,
}

/// One group's memory of its load.
#[derive(Debug, Clone)]
pub struct Scaler {
    since: Instant,
    samples: VecDeque<(Instant, Vec<Option<f64>>)>,
    panic_since: Option<Instant>,
    last_active: Instant,
    recommendations: VecDeque<(Instant, u32)>,
}

impl Scaler {
    /// A scaler that knows nothing before `now`: it scales down only once it has watched a whole
    /// stable window, and counts `now` as the last activity.
    pub fn new(now: Instant) -> Scaler {
        Scaler { since: now, samples: VecDeque::new(), panic_since: None, last_active: now, recommendations: VecDeque::new() }
    }

    pub fn observe(&mut self, now: Instant, observation: &Observation, settings: &Settings) {
        if observation.active || observation.queued > 0 {
            self.last_active = now;
        }
        self.samples.push_back((now, observation.values.clone()));
        while self.samples.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) >= settings.stable_window) {
            self.samples.pop_front();
        }
    }

    /// The average of policy `i` over the samples of the last `window`, if any was measured.
    fn average(&self, now: Instant, window: Duration, i: usize) -> Option<f64> {
        let values: Vec<f64> = self
            .samples
            .iter()
            .filter(|(at, _)| now.saturating_duration_since(*at) < window)
            .filter_map(|(_, values)| values.get(i).copied().flatten())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// The replicas the group should have now. `targets[i]` is policy i's target per replica.
    pub fn decide(&mut self, now: Instant, targets: &[f64], group: Group, queued: u32, settings: &Settings) -> Decision {
        let want = |window: Duration| {
            (0..targets.len())
                .map(|i| match self.average(now, window, i) {
                    Some(observed) => wanted(observed, targets[i]),
                    None => group.current, // nothing measured: hold
                })
                .max()
                .unwrap_or(group.current)
        };
        let (stable, panic) = (want(settings.stable_window), want(settings.panic_window));
        let base = group.ready.max(1);
        if f64::from(panic) >= settings.panic_threshold * f64::from(base) && panic > group.ready {
            self.panic_since = Some(now);
        }
        let panicking = self.panic_since.is_some_and(|at| now.saturating_duration_since(at) < settings.stable_window);
        if !panicking {
            self.panic_since = None;
        }
        let mut desired = if panicking { panic.max(stable).max(group.current) } else { stable };
        if desired < group.current {
            // Down only as far as both windows agree: a rising load keeps what the short one needs.
            desired = desired.max(panic.min(group.current));
        }
        let mut reason = if panicking {
            format!("panic: the last {:?} ask for {panic}", settings.panic_window)
        } else {
            format!("the last {:?} ask for {stable}", settings.stable_window)
        };
        if queued > 0 && desired == 0 {
            desired = 1;
            reason = format!("{queued} request(s) held at zero replicas");
        }
        let up_limit = (f64::from(group.current.max(1)) * settings.max_scale_up_rate).ceil() as u32;
        let down_limit = (f64::from(group.current) / settings.max_scale_down_rate).floor() as u32;
        desired = desired.min(up_limit.max(group.current + 1)).max(down_limit);
        // A scale-down waits for every recommendation of the delay to agree.
        self.recommendations.push_back((now, desired));
        while self.recommendations.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) > settings.scale_down_delay) {
            self.recommendations.pop_front();
        }
        if desired < group.current {
            desired = self.recommendations.iter().map(|(_, d)| *d).max().unwrap_or(desired).min(group.current);
        }
        // Not enough history to trust a scale-down.
        if desired < group.current && now.saturating_duration_since(self.since) < settings.stable_window {
            desired = group.current;
        }
        if desired == 0 {
            let idle = now.saturating_duration_since(self.last_active);
            if idle < settings.stable_window + settings.scale_to_zero_grace || queued > 0 {
                desired = 1;
            } else {
                reason = format!("no traffic for {idle:?}");
            }
        }
        Decision { desired: desired.clamp(group.min, group.max.max(group.min)), panicking, reason }
    }
}

/// ceil(observed / target), without counting floating-point dust as one more replica.
fn wanted(observed: f64, target: f64) -> u32 {
    if !(observed.is_finite() && target > 0.0) || observed <= 0.0 {
        return 0;
    }
    let ratio = observed / target;
    let rounded = ratio.round();
    let replicas = if (ratio - rounded).abs() < 1e-9 { rounded } else { ratio.ceil() };
    replicas.min(f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests;
