//! Where the viewer is: country, continent, coordinates and the edge
//! location (colo) that received the request.
//!
//! The platform tells the edge; the core only parses what the adapter hands
//! it. Three sources:
//!
//! - **Cloudflare Workers**: `request.cf` (`country`, `continent`,
//!   `latitude`, `longitude`, `colo`). The adapter deserializes the `cf`
//!   object into [`WorkersCf`] and calls [`WorkersCf::location`].
//! - **CloudFront / Lambda@Edge**: the `CloudFront-Viewer-Country`,
//!   `CloudFront-Viewer-Latitude` and `CloudFront-Viewer-Longitude` headers
//!   (enabled in the origin request policy), read by [`from_cloudfront`].
//!   CloudFront sends no continent; it is derived from the country with
//!   [`Country::continent`].
//! - **Local runs and tests**: the `x-offload-geo` request header
//!   ([`TEST_HEADER`]), e.g. `x-offload-geo: country=DE;lat=52.5;lon=13.4`.
//!   Keys: `country`, `continent`, `lat`, `lon`, `colo`; separated by `;`,
//!   case-insensitive, whitespace around keys and values ignored, each at
//!   most once, `lat` and `lon` together or not at all. It is honoured only
//!   when `[routing] trust_test_header = true` (see [`locate`]); otherwise
//!   any viewer could pick their own region. The pipeline must strip it
//!   before forwarding upstream either way.
//!
//! Platform data is never an error: an unparsable platform field is simply
//! unknown (`None`). Only the test header, written by a developer, gets
//! typed errors.
//!
//! ```
//! use offload_core::route::geo::{parse_test_header, LatLon};
//! let loc = parse_test_header("country=de; lat=52.5; lon=13.4").unwrap();
//! assert_eq!(loc.country.unwrap().as_str(), "DE");
//! let frankfurt = LatLon::new(50.11, 8.68).unwrap();
//! let km = loc.coords.unwrap().distance_km(frankfurt);
//! assert!((420.0..440.0).contains(&km));
//! ```

use std::fmt;

use http::HeaderMap;
use serde::{Deserialize, Serialize, Serializer};

/// The test header honoured when `trust_test_header` is on.
pub const TEST_HEADER: &str = "x-offload-geo";
/// The header the CloudFront Function sets to the region that claims the
/// viewer's country ([`crate::route::select::region_for_country`]); a
/// viewer's own value is removed.
pub const REGION_HINT_HEADER: &str = "x-offload-region-hint";

/// Mean Earth radius (IUGG), kilometres.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// An ISO 3166-1 alpha-2 country code, upper-case (`DE`, `US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// Parse exactly two upper-case ASCII letters. `XX` (unknown) and `T1`
    /// (Tor) are not countries and return `None`, as does anything else
    /// malformed.
    pub fn parse(s: &str) -> Option<Self> {
        match s.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() && s != "XX" => Some(Self([*a, *b])),
            _ => None,
        }
    }

    /// Like [`Country::parse`] but accepts lower case (for hand-written input).
    pub fn parse_any_case(s: &str) -> Option<Self> {
        Self::parse(&s.to_ascii_uppercase())
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII upper-case letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("XX")
    }

    /// The continent this country is (mostly) on, as geo-IP databases
    /// assign it. `None` for codes not in the table.
    pub fn continent(&self) -> Option<Continent> {
        let code = self.as_str();
        CONTINENT_TABLE
            .iter()
            .find(|(_, codes)| codes.split(' ').any(|c| c == code))
            .map(|(continent, _)| *continent)
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A continent code as used by Cloudflare and geo-IP databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Continent {
    Af,
    An,
    As,
    Eu,
    Na,
    Oc,
    Sa,
}

impl Continent {
    pub const ALL: [Continent; 7] = [Self::Af, Self::An, Self::As, Self::Eu, Self::Na, Self::Oc, Self::Sa];

    /// Parse an upper-case two-letter code (`AF AN AS EU NA OC SA`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Af => "AF",
            Self::An => "AN",
            Self::As => "AS",
            Self::Eu => "EU",
            Self::Na => "NA",
            Self::Oc => "OC",
            Self::Sa => "SA",
        }
    }
}

impl fmt::Display for Continent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Continent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Country → continent, following the UN geoscheme as geo-IP databases
/// do (Turkey, Cyprus and the Caucasus in Asia; Russia in Europe).
const CONTINENT_TABLE: [(Continent, &str); 7] = [
    (
        Continent::Af,
        "DZ AO BJ BW BF BI CV CM CF TD KM CG CD CI DJ EG GQ ER SZ ET GA GM GH GN GW KE LS LR LY \
         MG MW ML MR MU YT MA MZ NA NE NG RE RW SH ST SN SC SL SO ZA SS SD TZ TG TN UG EH ZM ZW",
    ),
    (Continent::An, "AQ BV GS HM TF"),
    (
        Continent::As,
        "AF AM AZ BH BD BT IO BN KH CN CX CC CY GE HK IN ID IR IQ IL JP JO KZ KW KG LA LB MO MY \
         MV MN MM NP KP OM PK PS PH QA SA SG KR LK SY TW TJ TH TL TR TM AE UZ VN YE",
    ),
    (
        Continent::Eu,
        "AX AL AD AT BY BE BA BG HR CZ DK EE FO FI FR DE GI GR GG VA HU IS IE IM IT JE XK LV LI \
         LT LU MT MD MC ME NL MK NO PL PT RO RU SM RS SK SI ES SJ SE CH UA GB",
    ),
    (
        Continent::Na,
        "AI AG AW BS BB BZ BM BQ VG CA KY CR CU CW DM DO SV GL GD GP GT HT HN JM MQ MX MS NI PA \
         PR BL KN LC MF PM VC SX TT TC US VI",
    ),
    (Continent::Oc, "AS AU CK FJ PF GU KI MH FM NR NC NZ NU NF MP PW PG PN WS SB TK TO TV VU WF UM"),
    (Continent::Sa, "AR BO BR CL CO EC FK GF GY PY PE SR UY VE"),
];

/// A point on Earth in decimal degrees; both finite and in range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatLon {
    lat: f64,
    lon: f64,
}

// Validated coordinates are finite (never NaN), so equality is total.
impl Eq for LatLon {}

impl LatLon {
    /// `lat` in [-90, 90], `lon` in [-180, 180], both finite.
    pub fn new(lat: f64, lon: f64) -> Option<Self> {
        let ok = lat.is_finite()
            && lon.is_finite()
            && (-90.0..=90.0).contains(&lat)
            && (-180.0..=180.0).contains(&lon);
        ok.then_some(Self { lat, lon })
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }
    pub fn lon(&self) -> f64 {
        self.lon
    }

    /// Great-circle distance in kilometres (haversine formula on a sphere
    /// of radius [`EARTH_RADIUS_KM`]; within 0.5 % of the ellipsoid).
    pub fn distance_km(&self, other: LatLon) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let dphi = phi2 - phi1;
        let dlambda = (other.lon - self.lon).to_radians();
        let a = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
        // Rounding can push `a` a hair outside [0, 1]; clamp so asin never
        // sees an out-of-domain value (NaN).
        let c = 2.0 * a.clamp(0.0, 1.0).sqrt().asin();
        EARTH_RADIUS_KM * c
    }
}

/// Everything known about where the viewer is. Every field is optional:
/// selection uses what there is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ViewerLocation {
    pub country: Option<Country>,
    pub continent: Option<Continent>,
    pub coords: Option<LatLon>,
    /// The edge location (Cloudflare colo, e.g. `FRA`), for logs.
    pub colo: Option<String>,
}

impl ViewerLocation {
    /// Fill in the continent from the country if the platform gave none.
    pub fn with_derived_continent(mut self) -> Self {
        if self.continent.is_none() {
            self.continent = self.country.and_then(|c| c.continent());
        }
        self
    }
}

/// The geo fields of a Workers `request.cf` object. Unknown fields are
/// ignored so the adapter can deserialize the whole `cf` object into it.
/// `latitude`/`longitude` are strings in Workers; numbers are accepted too.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WorkersCf {
    pub country: Option<String>,
    pub continent: Option<String>,
    pub latitude: Option<StrOrNum>,
    pub longitude: Option<StrOrNum>,
    pub colo: Option<String>,
}

/// A JSON string or number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StrOrNum {
    Str(String),
    Num(f64),
}

impl StrOrNum {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Str(s) => parse_degrees(s),
            Self::Num(n) => Some(*n),
        }
    }
}

impl WorkersCf {
    /// The viewer location Cloudflare reports; malformed fields are unknown.
    pub fn location(&self) -> ViewerLocation {
        let lat = self.latitude.as_ref().and_then(StrOrNum::as_f64);
        let lon = self.longitude.as_ref().and_then(StrOrNum::as_f64);
        ViewerLocation {
            country: self.country.as_deref().and_then(Country::parse),
            continent: self.continent.as_deref().and_then(Continent::parse),
            coords: lat.zip(lon).and_then(|(lat, lon)| LatLon::new(lat, lon)),
            colo: self.colo.as_deref().and_then(parse_colo),
        }
        .with_derived_continent()
    }
}

/// The viewer location from CloudFront's viewer headers; missing or
/// malformed headers are unknown.
pub fn from_cloudfront(headers: &HeaderMap) -> ViewerLocation {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let lat = get("cloudfront-viewer-latitude").and_then(parse_degrees);
    let lon = get("cloudfront-viewer-longitude").and_then(parse_degrees);
    ViewerLocation {
        country: get("cloudfront-viewer-country").and_then(|c| Country::parse(c.trim())),
        continent: None,
        coords: lat.zip(lon).and_then(|(lat, lon)| LatLon::new(lat, lon)),
        colo: None,
    }
    .with_derived_continent()
}

/// A decimal degree value: optional sign, digits, optional fraction. No
/// exponents, `inf`, `NaN` or hex, at most 32 characters.
///
/// Read without `str::parse::<f64>` (its float reader and tables were
/// ~16 KB of the Workers Wasm): the digits as an integer below 2^53 divided
/// by an exact power of ten, which IEEE division rounds correctly (Clinger's
/// fast path), so the value is the one `str::parse` gives. Fraction digits
/// past 16 digits, or past 2^53 with the integer part, are cut (a change
/// below 1e-13 degrees); an integer part past 2^53 only has to be out of
/// range, and is.
pub fn parse_degrees(s: &str) -> Option<f64> {
    let s = s.trim();
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    let ok = !digits.is_empty()
        && s.len() <= 32
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && digits.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    const EXACT_BELOW: u64 = 1 << 53;
    const POW10: [f64; 17] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16];
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut mantissa: u64 = 0;
    let mut big = 0f64; // the integer part once it no longer fits
    for b in int.bytes() {
        let d = u64::from(b - b'0');
        match mantissa.checked_mul(10).map(|m| m + d).filter(|m| *m < EXACT_BELOW) {
            Some(m) if big == 0.0 => mantissa = m,
            _ => {
                if big == 0.0 {
                    big = mantissa as f64;
                }
                big = big * 10.0 + d as f64;
            }
        }
    }
    let magnitude = if big != 0.0 {
        big
    } else {
        let mut scale = 0;
        for b in frac.bytes() {
            if scale == 16 {
                break;
            }
            match mantissa.checked_mul(10).map(|m| m + u64::from(b - b'0')).filter(|m| *m < EXACT_BELOW) {
                Some(m) => {
                    mantissa = m;
                    scale += 1;
                }
                None => break,
            }
        }
        mantissa as f64 / POW10.get(scale).copied().unwrap_or(1e16)
    };
    let v = if s.starts_with('-') { -magnitude } else { magnitude };
    v.is_finite().then_some(v)
}

fn parse_colo(s: &str) -> Option<String> {
    let ok = (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then(|| s.to_owned())
}

/// A malformed [`TEST_HEADER`] value: which key, which value, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoHeaderError {
    key: String,
    value: String,
    kind: GeoHeaderErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GeoHeaderErrorKind {
    TooLong,
    NotKeyValue,
    UnknownKey,
    Duplicate,
    BadValue(&'static str),
    LatLonPair,
}

impl GeoHeaderError {
    fn new(key: &str, value: &str, kind: GeoHeaderErrorKind) -> Self {
        // Keep the echoed input short: it ends up in logs.
        let clip = |s: &str| s.chars().take(64).collect::<String>();
        Self { key: clip(key), value: clip(value), kind }
    }
    /// The offending key (empty for whole-header problems).
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The offending value (clipped to 64 characters).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for GeoHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, v) = (&self.key, &self.value);
        match self.kind {
            GeoHeaderErrorKind::TooLong => write!(f, "{TEST_HEADER}: longer than 256 bytes"),
            GeoHeaderErrorKind::NotKeyValue => write!(f, "{TEST_HEADER}: {v:?} is not key=value"),
            GeoHeaderErrorKind::UnknownKey => {
                write!(f, "{TEST_HEADER}: unknown key {k:?} (expected country, continent, lat, lon, colo)")
            }
            GeoHeaderErrorKind::Duplicate => write!(f, "{TEST_HEADER}: {k} given twice"),
            GeoHeaderErrorKind::BadValue(why) => write!(f, "{TEST_HEADER}: {k}: bad value {v:?}: {why}"),
            GeoHeaderErrorKind::LatLonPair => {
                write!(f, "{TEST_HEADER}: lat and lon must be given together")
            }
        }
    }
}

impl std::error::Error for GeoHeaderError {}

/// Parse the [`TEST_HEADER`] value, e.g. `country=DE;lat=52.5;lon=13.4`.
/// The continent is derived from the country unless given.
pub fn parse_test_header(value: &str) -> Result<ViewerLocation, GeoHeaderError> {
    use GeoHeaderErrorKind as K;
    if value.len() > 256 {
        return Err(GeoHeaderError::new("", "", K::TooLong));
    }
    let mut loc = ViewerLocation::default();
    let (mut lat, mut lon, mut seen) = (None, None, [false; 5]);
    for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = part
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| GeoHeaderError::new("", part, K::NotKeyValue))?;
        let lower = key.to_ascii_lowercase();
        let slot = ["country", "continent", "lat", "lon", "colo"]
            .iter()
            .position(|k| *k == lower)
            .ok_or_else(|| GeoHeaderError::new(key, val, K::UnknownKey))?;
        if std::mem::replace(&mut seen[slot], true) {
            return Err(GeoHeaderError::new(&lower, val, K::Duplicate));
        }
        let bad = |why| GeoHeaderError::new(&lower, val, K::BadValue(why));
        match slot {
            0 => {
                loc.country = Some(
                    Country::parse_any_case(val).ok_or_else(|| bad("expected an ISO 3166 alpha-2 code"))?,
                )
            }
            1 => {
                loc.continent = Some(
                    Continent::parse(&val.to_ascii_uppercase())
                        .ok_or_else(|| bad("expected one of AF AN AS EU NA OC SA"))?,
                )
            }
            2 => {
                lat = Some(
                    parse_degrees(val)
                        .filter(|v| (-90.0..=90.0).contains(v))
                        .ok_or_else(|| bad("expected decimal degrees in [-90, 90]"))?,
                )
            }
            3 => {
                lon = Some(
                    parse_degrees(val)
                        .filter(|v| (-180.0..=180.0).contains(v))
                        .ok_or_else(|| bad("expected decimal degrees in [-180, 180]"))?,
                )
            }
            _ => loc.colo = Some(parse_colo(val).ok_or_else(|| bad("expected 1-16 of [A-Za-z0-9-]"))?),
        }
    }
    loc.coords = match (lat, lon) {
        (Some(lat), Some(lon)) => LatLon::new(lat, lon),
        (None, None) => None,
        _ => return Err(GeoHeaderError::new("", value, K::LatLonPair)),
    };
    Ok(loc.with_derived_continent())
}

/// The location selection should use: the platform's, unless the test
/// header is present *and* trusted by config, in which case it replaces
/// the platform's entirely. An untrusted test header is ignored.
pub fn locate(
    platform: ViewerLocation,
    test_header: Option<&str>,
    trust_test_header: bool,
) -> Result<ViewerLocation, GeoHeaderError> {
    match test_header {
        Some(v) if trust_test_header => parse_test_header(v),
        _ => Ok(platform),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn ll(lat: f64, lon: f64) -> LatLon {
        LatLon::new(lat, lon).unwrap()
    }

    #[test]
    fn haversine_distances() {
        // (a, b, expected km, tolerance km)
        let cases = [
            (ll(51.5074, -0.1278), ll(48.8566, 2.3522), 343.5, 2.0), // London–Paris
            (ll(40.7128, -74.0060), ll(34.0522, -118.2437), 3936.0, 10.0), // NYC–LA
            (ll(52.52, 13.405), ll(52.52, 13.405), 0.0, 1e-9),
            (ll(0.0, 0.0), ll(0.0, 180.0), 20015.1, 1.0), // antipodal
            (ll(90.0, 0.0), ll(-90.0, 0.0), 20015.1, 1.0),
            (ll(0.0, 179.9), ll(0.0, -179.9), 22.2, 0.5), // across the date line
            (ll(-33.8688, 151.2093), ll(35.6762, 139.6503), 7823.0, 15.0), // Sydney–Tokyo
        ];
        for (a, b, want, tol) in cases {
            let d = a.distance_km(b);
            assert!((d - want).abs() <= tol, "{a:?} {b:?}: {d} vs {want}");
            assert!((d - b.distance_km(a)).abs() < 1e-6, "symmetric");
        }
    }

    #[test]
    fn latlon_validation() {
        for (lat, lon, ok) in [
            (0.0, 0.0, true),
            (90.0, 180.0, true),
            (-90.0, -180.0, true),
            (90.1, 0.0, false),
            (0.0, -180.5, false),
            (f64::NAN, 0.0, false),
            (0.0, f64::INFINITY, false),
        ] {
            assert_eq!(LatLon::new(lat, lon).is_some(), ok, "{lat} {lon}");
        }
    }

    #[test]
    fn country_and_continent_parsing() {
        for (s, ok) in [
            ("DE", true),
            ("de", false),
            ("D", false),
            ("DEU", false),
            ("XX", false),
            ("T1", false),
            ("", false),
            ("Dé", false),
        ] {
            assert_eq!(Country::parse(s).is_some(), ok, "{s}");
        }
        for (c, want) in [
            ("DE", Some(Continent::Eu)),
            ("US", Some(Continent::Na)),
            ("BR", Some(Continent::Sa)),
            ("JP", Some(Continent::As)),
            ("AU", Some(Continent::Oc)),
            ("ZA", Some(Continent::Af)),
            ("AQ", Some(Continent::An)),
            ("QQ", None),
        ] {
            assert_eq!(Country::parse(c).unwrap().continent(), want, "{c}");
        }
        for s in ["AF", "AN", "AS", "EU", "NA", "OC", "SA"] {
            assert_eq!(Continent::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(Continent::parse("eu"), None);
        assert_eq!(Continent::parse("T1"), None);
    }

    #[test]
    fn degrees_read_as_str_parse_reads_them() {
        // Up to 16 significant digits the value is exactly `str::parse`'s.
        let mut state: u64 = 11;
        let mut next = |n: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        for _ in 0..20_000 {
            let int = next(1000);
            let frac_len = next(13) as usize;
            let frac: String = (0..frac_len).map(|_| char::from(b'0' + next(10) as u8)).collect();
            let sign = ["", "-", "+"][next(3) as usize];
            let text = if frac_len == 0 { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") };
            assert_eq!(parse_degrees(&text), text.parse::<f64>().ok(), "{text}");
        }
        for (text, want) in [
            ("38.9", 38.9),
            ("-77.4", -77.4),
            (".5", 0.5),
            ("5.", 5.0),
            ("007.50", 7.5),
            ("-0", -0.0),
            ("179.9999999999999", 179.9999999999999),
            ("90", 90.0),
        ] {
            assert_eq!(parse_degrees(text), Some(want), "{text}");
        }
        // Past 16 significant digits: within 1e-13 of `str::parse`.
        for text in ["38.123456789012345678901234567", "-0.0000000000000000000000000001", "1.99999999999999999999"] {
            let (ours, std) = (parse_degrees(text).unwrap(), text.parse::<f64>().unwrap());
            assert!((ours - std).abs() < 1e-13, "{text}: {ours} vs {std}");
        }
        // A huge integer part stays huge (out of range for a coordinate).
        assert!(parse_degrees("123456789012345678901234567890").unwrap() > 1e29);
        for bad in ["", "-", ".", "1.2.3", "1e5", "inf", "NaN", "0x10", "--1", "1,5"] {
            assert_eq!(parse_degrees(bad), None, "{bad}");
        }
    }

    #[test]
    fn continent_table_has_no_duplicates() {
        let mut all: Vec<&str> = CONTINENT_TABLE.iter().flat_map(|(_, c)| c.split(' ')).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert!(all.iter().all(|c| Country::parse(c).is_some()), "all codes well-formed");
    }

    #[test]
    fn test_header_parses() {
        let loc = parse_test_header("country=DE;lat=52.5;lon=13.4").unwrap();
        assert_eq!(loc.country, Country::parse("DE"));
        assert_eq!(loc.continent, Some(Continent::Eu));
        assert_eq!(loc.coords, Some(ll(52.5, 13.4)));
        let loc = parse_test_header(" COUNTRY = us ; continent=sa ; colo=IAD ;").unwrap();
        assert_eq!(loc.country, Country::parse("US"));
        assert_eq!(loc.continent, Some(Continent::Sa), "explicit continent wins");
        assert_eq!(loc.colo.as_deref(), Some("IAD"));
        assert_eq!(parse_test_header("").unwrap(), ViewerLocation::default());
        let loc = parse_test_header("lat=-33.9;lon=+151.2").unwrap();
        assert_eq!(loc.coords, Some(ll(-33.9, 151.2)));
    }

    #[test]
    fn test_header_malformed() {
        let long = "country=DE;".repeat(30);
        let cases: [(&str, &str); 16] = [
            ("country", "is not key=value"),
            ("country=DEU", "bad value \"DEU\""),
            ("country=XX", "country: bad value"),
            ("continent=EA", "continent: bad value"),
            ("lat=91;lon=0", "lat: bad value"),
            ("lat=0;lon=181", "lon: bad value"),
            ("lat=1e3;lon=0", "lat: bad value"),
            ("lat=NaN;lon=0", "lat: bad value"),
            ("lat=inf;lon=0", "lat: bad value"),
            ("lat=.;lon=0", "lat: bad value"),
            ("lat=1.2.3;lon=0", "lat: bad value"),
            ("lat=52.5", "together"),
            ("country=DE;country=FR", "country given twice"),
            ("city=Berlin", "unknown key \"city\""),
            ("colo=F R A", "colo: bad value"),
            (long.as_str(), "longer than 256"),
        ];
        for (input, want) in cases {
            let e = parse_test_header(input).unwrap_err().to_string();
            assert!(e.contains(want), "{input:?}: {e}");
            assert!(e.starts_with("x-offload-geo: "), "{e}");
        }
    }

    #[test]
    fn test_header_only_when_trusted() {
        let platform = ViewerLocation { country: Country::parse("US"), ..Default::default() };
        let header = Some("country=DE");
        let got = locate(platform.clone(), header, false).unwrap();
        assert_eq!(got, platform, "untrusted header ignored");
        let got = locate(platform.clone(), header, true).unwrap();
        assert_eq!(got.country, Country::parse("DE"));
        assert!(locate(platform.clone(), Some("nope"), false).is_ok(), "untrusted: not even parsed");
        assert!(locate(platform.clone(), Some("nope"), true).is_err());
        assert_eq!(locate(platform.clone(), None, true).unwrap(), platform);
    }

    #[test]
    fn cloudfront_headers() {
        let mut h = HeaderMap::new();
        h.insert("cloudfront-viewer-country", "FR".parse().unwrap());
        h.insert("cloudfront-viewer-latitude", "48.86".parse().unwrap());
        h.insert("cloudfront-viewer-longitude", "2.35".parse().unwrap());
        let loc = from_cloudfront(&h);
        assert_eq!(loc.country, Country::parse("FR"));
        assert_eq!(loc.continent, Some(Continent::Eu));
        assert_eq!(loc.coords, Some(ll(48.86, 2.35)));

        // Malformed platform values are unknown, never errors or panics.
        let mut h = HeaderMap::new();
        h.insert("cloudfront-viewer-country", "france".parse().unwrap());
        h.insert("cloudfront-viewer-latitude", "999".parse().unwrap());
        h.insert("cloudfront-viewer-longitude", "2.35".parse().unwrap());
        assert_eq!(from_cloudfront(&h), ViewerLocation::default());
        let mut h = HeaderMap::new();
        h.insert("cloudfront-viewer-latitude", http::HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(from_cloudfront(&h), ViewerLocation::default());
    }

    #[test]
    fn workers_cf_object() {
        let cf: WorkersCf = serde_json::from_str(
            r#"{"country":"JP","continent":"AS","latitude":"35.69","longitude":"139.69","colo":"NRT","asn":2516,"city":"Tokyo"}"#,
        )
        .unwrap();
        let loc = cf.location();
        assert_eq!(loc.country, Country::parse("JP"));
        assert_eq!(loc.continent, Some(Continent::As));
        assert_eq!(loc.coords, Some(ll(35.69, 139.69)));
        assert_eq!(loc.colo.as_deref(), Some("NRT"));

        let cf: WorkersCf =
            serde_json::from_str(r#"{"country":"T1","continent":"T1","latitude":1.5,"longitude":"x"}"#)
                .unwrap();
        assert_eq!(cf.location(), ViewerLocation::default());
        let cf: WorkersCf =
            serde_json::from_str(r#"{"country":"BR","latitude":-23.5,"longitude":-46.6}"#).unwrap();
        let loc = cf.location();
        assert_eq!(loc.continent, Some(Continent::Sa), "derived from country");
        assert_eq!(loc.coords, Some(ll(-23.5, -46.6)));
    }
}
