//! Origin selection: a pure function from (routing config, pool, viewer
//! location, health snapshot, sticky cookie, a random number, now) to an
//! ordered list of attempts.
//!
//! Preference, best first:
//!
//! 1. **Sticky**: the sticky cookie names a region in the pool with a
//!    usable origin → that region first.
//! 2. **Country**: regions listing the viewer's country.
//! 3. **Continent**: regions listing the viewer's continent.
//! 4. **Nearest**: every other region, by great-circle distance from the
//!    viewer's coordinates (when known). Within tiers 2 and 3 regions are
//!    ordered by distance too.
//!
//! Regions in the same tier whose distances differ by at most
//! `equal_distance_km` (or all of the tier, when the viewer's coordinates
//! are unknown) are *equally preferred*: the first of them is drawn by
//! weight using the caller's random number (a canary at weight 50 next to
//! a region at weight 950 gets 5 %); the rest follow by weight. Weight 0
//! drains a region: it is drawn only if no weighted peer is usable.
//!
//! Health: origins that are ejected or being probed by another request go
//! last, in the same preference order, so that they are still tried when
//! everything is down. Origins whose ejection just ended are kept in place
//! but marked [`AttemptHealth::Probe`]: the request must win
//! [`HealthTable::try_acquire_probe`] before using one (see
//! [`super::failover::Failover::start`], which does it). Within a region,
//! the starting origin rotates with the random number.
//!
//! ```
//! use offload_core::route::config::Routing;
//! use offload_core::route::geo::parse_test_header;
//! use offload_core::route::health::HealthTable;
//! use offload_core::route::select::{select, Reason};
//! let routing = Routing::from_toml(r#"
//!     [regions.us-east-1]
//!     location = { lat = 38.9, lon = -77.4 }
//!     origins = [{ url = "http://127.0.0.1:18701" }]
//!     [regions.eu-west-1]
//!     location = { lat = 53.35, lon = -6.26 }
//!     origins = [{ url = "http://127.0.0.1:18702" }]
//! "#).unwrap();
//! let health = HealthTable::new(routing.health());
//! let viewer = parse_test_header("country=DE;lat=52.5;lon=13.4").unwrap();
//! let sel = select(&routing, routing.default_pool(), &viewer, &health, None, 7, 0);
//! assert_eq!(sel.reason, Reason::Nearest);
//! assert_eq!(sel.attempts[0].region, "eu-west-1");
//! assert_eq!(sel.attempts[1].region, "us-east-1");
//! ```

use std::cmp::Ordering;
use std::fmt;

use serde::Serialize;

use super::config::{Pool, Region, Routing};
use super::geo::{Country, ViewerLocation};
use super::health::{HealthTable, OriginStatus};

/// Why the first attempt goes where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The sticky cookie named this (usable) region.
    Sticky,
    /// The region lists the viewer's country.
    Country,
    /// The region lists the viewer's continent.
    Continent,
    /// The nearest region to the viewer's coordinates.
    Nearest,
    /// No location preference applied; drawn by weight.
    Weighted,
    /// The preferred regions were unhealthy (or everything is down).
    Fallback,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sticky => "sticky",
            Self::Country => "country",
            Self::Continent => "continent",
            Self::Nearest => "nearest",
            Self::Weighted => "weighted",
            Self::Fallback => "fallback",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The health of an attempt's origin when it was selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptHealth {
    Healthy,
    /// Ejection over; acquire the probe before sending.
    Probe,
    /// Ejected or being probed: tried only after every usable origin.
    Unhealthy,
}

/// One (region, origin) to try.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub region: String,
    /// Origin id, `<region>/<index>`; look it up with [`Routing::origin`].
    pub origin: String,
    pub health: AttemptHealth,
}

/// The ordered attempts for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// Best first. Empty only if the pool has no regions.
    pub attempts: Vec<Attempt>,
    pub reason: Reason,
}

impl Selection {
    pub fn primary(&self) -> Option<&Attempt> {
        self.attempts.first()
    }
}

struct Candidate<'a> {
    region: &'a Region,
    tier: u8,
    distance_km: Option<f64>,
    usable: bool,
}

fn cmp_f64(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        _ => Ordering::Equal,
    }
}

/// A 32-bit mixer (murmur3 finalizer) to derive a second, decorrelated
/// random value from the caller's.
fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x = x.wrapping_mul(0xc2b2_ae35);
    x ^ (x >> 16)
}

/// Order one group of equally preferred regions: the weighted draw first,
/// then the rest by weight (descending), keeping the input order on ties.
fn order_group(group: &mut [Candidate<'_>], rand: u32) {
    let total: u64 = group.iter().filter(|c| c.usable).map(|c| u64::from(c.region.weight())).sum();
    let first = if total == 0 {
        group.iter().position(|c| c.usable)
    } else {
        let mut x = (u64::from(rand) * total) >> 32;
        group.iter().position(|c| {
            let w = if c.usable { u64::from(c.region.weight()) } else { 0 };
            if x < w {
                true
            } else {
                x -= w;
                false
            }
        })
    };
    if let Some(i) = first {
        group[..=i].rotate_right(1);
        crate::sort::sort_by_key(&mut group[1..], |c| std::cmp::Reverse(c.region.weight()));
    } else {
        crate::sort::sort_by_key(group, |c| std::cmp::Reverse(c.region.weight()));
    }
}

/// How a region claims a viewer: 0 by country, 1 by continent, 2 not at
/// all (then only distance orders it).
fn tier(region: &Region, viewer: &ViewerLocation) -> u8 {
    if viewer.country.is_some_and(|c| region.countries().contains(&c)) {
        0
    } else if viewer.continent.is_some_and(|c| region.continents().contains(&c)) {
        1
    } else {
        2
    }
}

/// The first region (in name order) that claims a viewer from `country`
/// by country, else by continent; `None` when no region claims it. This is
/// the CloudFront Function's region hint (it knows only the country).
pub fn region_for_country(routing: &Routing, country: Country) -> Option<&Region> {
    let viewer = ViewerLocation { country: Some(country), ..Default::default() }.with_derived_continent();
    let regions = routing.regions();
    let best = regions.iter().map(|r| tier(r, &viewer)).min().filter(|t| *t < 2)?;
    regions.iter().find(|r| tier(r, &viewer) == best)
}

/// Select the ordered attempts for one request. Pure and deterministic
/// given its arguments; `rand` should be uniformly random per request.
pub fn select(
    routing: &Routing,
    pool: &Pool,
    viewer: &ViewerLocation,
    health: &HealthTable,
    sticky: Option<&str>,
    rand: u32,
    now_ms: u64,
) -> Selection {
    let usable = |r: &Region| r.origins().iter().any(|o| health.status(o.id(), now_ms).is_usable());
    let mut cands: Vec<Candidate<'_>> = routing
        .regions()
        .iter()
        .filter(|r| pool.contains(r.name()))
        .map(|r| {
            let tier = tier(r, viewer);
            Candidate {
                region: r,
                tier,
                distance_km: viewer.coords.map(|v| v.distance_km(r.location())),
                usable: usable(r),
            }
        })
        .collect();
    // Stable sort: regions are name-ordered, so ties stay deterministic.
    crate::sort::sort_by(&mut cands, |a, b| a.tier.cmp(&b.tier).then(cmp_f64(a.distance_km, b.distance_km)));

    // Split into groups of equally preferred regions and order each.
    let tolerance = routing.equal_distance_km();
    let mut start = 0;
    let mut first_group_len = None;
    while start < cands.len() {
        let lead = &cands[start];
        let len = cands[start..]
            .iter()
            .take_while(|c| {
                c.tier == lead.tier
                    && match (c.distance_km, lead.distance_km) {
                        (Some(d), Some(l)) => d - l <= tolerance,
                        _ => true,
                    }
            })
            .count()
            .max(1);
        first_group_len.get_or_insert(len);
        order_group(&mut cands[start..start + len], rand);
        start += len;
    }
    let best_tier = cands.first().map(|c| c.tier);
    let first_group: Vec<&str> =
        cands.iter().take(first_group_len.unwrap_or(0)).map(|c| c.region.name()).collect();

    // Usable regions keep their order ahead of unusable ones.
    crate::sort::sort_by_key(&mut cands, |c| !c.usable);

    let mut reason = None;
    if let Some(name) = sticky {
        if let Some(i) = cands.iter().position(|c| c.usable && c.region.name() == name) {
            cands[..=i].rotate_right(1);
            reason = Some(Reason::Sticky);
        }
    }

    let spin = mix(rand);
    let mut attempts = Vec::new();
    let mut tail = Vec::new();
    for c in &cands {
        let origins = c.region.origins();
        let n = origins.len().max(1);
        let offset = spin as usize % n;
        for k in 0..origins.len() {
            let Some(o) = origins.get((offset + k) % n) else { continue };
            let (health, list) = match health.status(o.id(), now_ms) {
                OriginStatus::Healthy => (AttemptHealth::Healthy, &mut attempts),
                OriginStatus::ProbeReady => (AttemptHealth::Probe, &mut attempts),
                OriginStatus::Probing | OriginStatus::Ejected { .. } => (AttemptHealth::Unhealthy, &mut tail),
            };
            list.push(Attempt { region: c.region.name().to_owned(), origin: o.id().to_owned(), health });
        }
    }
    attempts.append(&mut tail);

    let reason = reason.unwrap_or_else(|| match (attempts.first(), best_tier) {
        (Some(a), Some(tier)) if a.health != AttemptHealth::Unhealthy => {
            let in_best_group = first_group.contains(&a.region.as_str());
            match tier {
                _ if !in_best_group => Reason::Fallback,
                0 => Reason::Country,
                1 => Reason::Continent,
                _ if viewer.coords.is_some() => Reason::Nearest,
                _ => Reason::Weighted,
            }
        }
        _ => Reason::Fallback,
    });
    Selection { attempts, reason }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::route::config::RawPool;
    use crate::route::geo::parse_test_header;

    /// us-east-1 (Virginia, US/CA, NA), us-east-1-canary (same place,
    /// weight 50 vs 950), eu-west-1 (Dublin, EU), eu-central-1 (Frankfurt,
    /// EU, DE/AT/CH), ap-northeast-1 (Tokyo, two origins).
    const CFG: &str = r#"
[regions.us-east-1]
location = { lat = 38.9, lon = -77.4 }
countries = ["US", "CA"]
continents = ["NA"]
weight = 950
origins = [{ url = "http://10.0.1.1" }]

[regions.us-east-1-canary]
location = { lat = 38.9, lon = -77.4 }
countries = ["US", "CA"]
continents = ["NA"]
weight = 50
origins = [{ url = "http://10.0.1.2" }]

[regions.eu-west-1]
location = { lat = 53.35, lon = -6.26 }
continents = ["EU"]
origins = [{ url = "http://10.0.2.1" }]

[regions.eu-central-1]
location = { lat = 50.11, lon = 8.68 }
countries = ["DE", "AT", "CH"]
continents = ["EU"]
origins = [{ url = "http://10.0.3.1" }]

[regions.ap-northeast-1]
location = { lat = 35.68, lon = 139.69 }
continents = ["AS"]
origins = [{ url = "http://10.0.4.1" }, { url = "http://10.0.4.2" }]

[routing.sticky]
cookie = "r"
"#;

    fn routing() -> Routing {
        Routing::from_toml(CFG).unwrap()
    }

    fn loc(s: &str) -> ViewerLocation {
        parse_test_header(s).unwrap()
    }

    #[test]
    fn region_for_country_prefers_countries_then_continents() {
        let r = routing();
        let hint = |c: &str| region_for_country(&r, Country::parse(c).unwrap()).map(|r| r.name().to_owned());
        // By country over by continent; among equals, the first by name.
        assert_eq!(hint("DE").as_deref(), Some("eu-central-1"));
        assert_eq!(hint("FR").as_deref(), Some("eu-central-1"));
        assert_eq!(hint("CA").as_deref(), Some("us-east-1"));
        assert_eq!(hint("MX").as_deref(), Some("us-east-1"));
        assert_eq!(hint("JP").as_deref(), Some("ap-northeast-1"));
        // No region claims South America or Oceania.
        assert_eq!(hint("BR"), None);
        assert_eq!(hint("NZ"), None);
    }

    fn eject(h: &mut HealthTable, origin: &str, now: u64) {
        for _ in 0..h.settings().failures_to_eject {
            h.record_failure(origin, now);
        }
    }

    fn regions(sel: &Selection) -> Vec<&str> {
        sel.attempts.iter().map(|a| a.region.as_str()).collect()
    }

    #[test]
    fn country_continent_nearest() {
        let r = routing();
        let h = HealthTable::new(r.health());
        // (viewer, expected first region, reason)
        let cases = [
            ("country=DE;lat=52.5;lon=13.4", "eu-central-1", Reason::Country),
            ("country=AT", "eu-central-1", Reason::Country),
            // Country beats distance: a Canadian in Vancouver still goes east.
            ("country=CA;lat=49.28;lon=-123.12", "us-east-1", Reason::Country),
            // Continent: France is EU; Paris–Frankfurt (480 km) beats Paris–Dublin (780 km).
            ("country=FR;lat=48.86;lon=2.35", "eu-central-1", Reason::Continent),
            ("country=IE;lat=53.3;lon=-6.3", "eu-west-1", Reason::Continent),
            ("country=JP", "ap-northeast-1", Reason::Continent),
            // Nearest: Sydney (OC, no region lists it) → Tokyo.
            ("country=AU;lat=-33.87;lon=151.21", "ap-northeast-1", Reason::Nearest),
            // Brazil (SA): nearest is Virginia (us-east-1 drawn by weight).
            ("country=BR;lat=-23.55;lon=-46.63", "us-east-1", Reason::Nearest),
            // Nothing known: drawn by weight among all (name order, so
            // rand 0 draws the first name).
            ("", "ap-northeast-1", Reason::Weighted),
        ];
        for (viewer, want, reason) in cases {
            let sel = select(&r, &Pool::All, &loc(viewer), &h, None, 0, 0);
            assert_eq!((regions(&sel)[0], sel.reason), (want, reason), "{viewer}: {:?}", regions(&sel));
            assert_eq!(sel.attempts.len(), 6, "every origin is listed");
        }
        // Failover order for a German viewer: Frankfurt, then the other EU
        // region, then the rest by distance (Virginia before Tokyo).
        let sel = select(&r, &Pool::All, &loc("country=DE;lat=52.5;lon=13.4"), &h, None, 0, 0);
        assert_eq!(regions(&sel)[..4], ["eu-central-1", "eu-west-1", "us-east-1", "us-east-1-canary"]);
        assert_eq!(regions(&sel)[4..], ["ap-northeast-1", "ap-northeast-1"]);
    }

    #[test]
    fn pool_restricts_regions() {
        let r = routing();
        let h = HealthTable::new(r.health());
        let pool = r.pool("p", &RawPool::Regions(vec!["eu-west-1".into(), "ap-northeast-1".into()])).unwrap();
        let sel = select(&r, &pool, &loc("country=DE;lat=52.5;lon=13.4"), &h, None, 0, 0);
        assert_eq!(regions(&sel), ["eu-west-1", "ap-northeast-1", "ap-northeast-1"]);
        assert_eq!(sel.reason, Reason::Continent);
        let sel = select(&r, &pool, &loc("country=US"), &h, None, 0, 0);
        assert_eq!(sel.reason, Reason::Weighted, "no country/continent region in the pool, no coordinates");
    }

    #[test]
    fn weights_split_equally_preferred_regions() {
        let r = routing();
        let h = HealthTable::new(r.health());
        let viewer = loc("country=US;lat=40.7;lon=-74.0");
        const N: u64 = 10_000;
        let mut canary = 0;
        for i in 0..N {
            let rand = ((i << 32).div_ceil(N)) as u32; // evenly spread over u32
            let sel = select(&r, &Pool::All, &viewer, &h, None, rand, 0);
            assert_eq!(sel.reason, Reason::Country);
            match regions(&sel)[..2] {
                ["us-east-1-canary", "us-east-1"] => canary += 1,
                ["us-east-1", "us-east-1-canary"] => {}
                ref other => panic!("{other:?}"),
            }
        }
        assert_eq!(canary, 500, "weight 50 of 1000 → exactly 5 % of evenly spread draws");
        // Deterministic given the random number.
        let a = select(&r, &Pool::All, &viewer, &h, None, 123_456_789, 0);
        assert_eq!(a, select(&r, &Pool::All, &viewer, &h, None, 123_456_789, 0));
        assert_eq!(regions(&select(&r, &Pool::All, &viewer, &h, None, u32::MAX, 0))[0], "us-east-1-canary");
        assert_eq!(regions(&select(&r, &Pool::All, &viewer, &h, None, 0, 0))[0], "us-east-1");
    }

    #[test]
    fn weight_zero_drains_but_remains_failover() {
        let cfg = CFG.replace("weight = 50", "weight = 0");
        let r = Routing::from_toml(&cfg).unwrap();
        let mut h = HealthTable::new(r.health());
        let viewer = loc("country=US");
        for rand in [0, 1 << 31, u32::MAX] {
            let sel = select(&r, &Pool::All, &viewer, &h, None, rand, 0);
            assert_eq!(regions(&sel)[..2], ["us-east-1", "us-east-1-canary"]);
        }
        eject(&mut h, "us-east-1/0", 0);
        let sel = select(&r, &Pool::All, &viewer, &h, None, 0, 1);
        assert_eq!(regions(&sel)[0], "us-east-1-canary");
        assert_eq!(sel.reason, Reason::Country, "still a country region, drawn from the same group");
    }

    #[test]
    fn unhealthy_origins_go_last_and_fallback() {
        let r = routing();
        let mut h = HealthTable::new(r.health());
        let de = loc("country=DE;lat=52.5;lon=13.4");
        eject(&mut h, "eu-central-1/0", 0);
        let sel = select(&r, &Pool::All, &de, &h, None, 0, 1);
        assert_eq!(sel.reason, Reason::Fallback);
        assert_eq!(regions(&sel)[0], "eu-west-1");
        let last = sel.attempts.last().unwrap();
        assert_eq!((last.origin.as_str(), last.health), ("eu-central-1/0", AttemptHealth::Unhealthy));

        // Everything down: all origins still listed, in preference order.
        for o in ["eu-west-1/0", "us-east-1/0", "us-east-1-canary/0", "ap-northeast-1/0", "ap-northeast-1/1"]
        {
            eject(&mut h, o, 0);
        }
        let sel = select(&r, &Pool::All, &de, &h, None, 0, 1);
        assert_eq!(sel.reason, Reason::Fallback);
        assert_eq!(sel.attempts.len(), 6);
        assert!(sel.attempts.iter().all(|a| a.health == AttemptHealth::Unhealthy));
        assert_eq!(regions(&sel)[..2], ["eu-central-1", "eu-west-1"]);

        // After the ejection: probe-ready origins regain their place.
        let sel = select(&r, &Pool::All, &de, &h, None, 0, 10_000);
        assert_eq!(sel.reason, Reason::Country);
        assert_eq!(sel.attempts[0].health, AttemptHealth::Probe);
    }

    #[test]
    fn origins_within_region_rotate_and_skip_ejected() {
        let r = routing();
        let mut h = HealthTable::new(r.health());
        let jp = loc("country=JP");
        let firsts: std::collections::BTreeSet<String> = (0..64u32)
            .map(|i| select(&r, &Pool::All, &jp, &h, None, i * 0x0400_0000, 0).attempts[0].origin.clone())
            .collect();
        assert_eq!(firsts.len(), 2, "both origins get traffic: {firsts:?}");
        eject(&mut h, "ap-northeast-1/0", 0);
        for i in 0..16u32 {
            let sel = select(&r, &Pool::All, &jp, &h, None, i * 0x1000_0000, 1);
            assert_eq!(sel.attempts[0].origin, "ap-northeast-1/1");
            assert_eq!(sel.reason, Reason::Continent, "region still usable");
        }
    }

    #[test]
    fn stickiness() {
        let r = routing();
        let mut h = HealthTable::new(r.health());
        let de = loc("country=DE;lat=52.5;lon=13.4");
        // (cookie, expected first, reason)
        let cases = [
            (Some("ap-northeast-1"), "ap-northeast-1", Reason::Sticky),
            (Some("eu-central-1"), "eu-central-1", Reason::Sticky),
            (Some("mars-1"), "eu-central-1", Reason::Country),
            (Some(""), "eu-central-1", Reason::Country),
            (None, "eu-central-1", Reason::Country),
        ];
        for (cookie, want, reason) in cases {
            let sel = select(&r, &Pool::All, &de, &h, cookie, 0, 0);
            assert_eq!((regions(&sel)[0], sel.reason), (want, reason), "{cookie:?}");
        }
        // A sticky region outside the pool or unhealthy is ignored.
        let pool = r.pool("p", &RawPool::Regions(vec!["eu-west-1".into()])).unwrap();
        let sel = select(&r, &pool, &de, &h, Some("ap-northeast-1"), 0, 0);
        assert_eq!((regions(&sel)[0], sel.reason), ("eu-west-1", Reason::Continent));
        eject(&mut h, "ap-northeast-1/0", 0);
        eject(&mut h, "ap-northeast-1/1", 0);
        let sel = select(&r, &Pool::All, &de, &h, Some("ap-northeast-1"), 0, 1);
        assert_eq!((regions(&sel)[0], sel.reason), ("eu-central-1", Reason::Country));
    }

    #[test]
    fn empty_pool_selection() {
        let r = Routing::from_toml("").unwrap();
        let h = HealthTable::new(r.health());
        let sel = select(&r, &Pool::All, &ViewerLocation::default(), &h, None, 0, 0);
        assert!(sel.attempts.is_empty());
        assert_eq!(sel.reason, Reason::Fallback);
        assert!(sel.primary().is_none());
    }
}
