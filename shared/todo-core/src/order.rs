//! Order keys: each task's sort positions as short decimal strings that PostgreSQL can index,
//! sort and range-filter through Dapr's Query API.
//!
//! Why this shape. `GET /v1/tasks` pages by keyset ("after this key"), and on `state.postgresql`
//! v1 the Query API compiles a filter on `a.b` to `value->'a'->>'b' <op> $n`: a *text*
//! comparison. Its `GT`/`GTE`/`LT`/`LTE` refuse string operands ("string type not permitted"),
//! and a number operand is bound as Go's `fmt.Sprintf("%v", float64)`, which switches to
//! exponent form (`1.234567e+06`) from 1,000,000 up (components-contrib v1.18.4
//! `common/component/postgresql/v1/postgresql_query.go`; daprd parses the body with
//! `encoding/json`, so every number is a `float64`). A key therefore has to be a string in the
//! stored task, a number in the filter, and read the same both ways. Every key here is
//! `1ddddd.ddddddddd` with trailing zeros (and a bare point) dropped: six integer digits, at
//! most fifteen significant digits in all. Such a number survives JSON → `float64` → `%v`
//! digit for digit, stays out of exponent form (it is below 1,000,000), and because the integer
//! part has a fixed width, text order is numeric order, byte-wise and under any PostgreSQL
//! collation (locale collations skip the point, which sits at the same place in every key).
//!
//! Each key carries a 14-digit payload: milliseconds since the epoch for `created`/`updated`
//! (until 2286), centiseconds for `due` (the validated years 1970 to 9999 need 2.5×10^13),
//! and for `priority` the rank times 10^13 plus the creation time, so that the thousands of
//! tasks of one priority are not one tie. A task without a due time gets [`UNDATED_DUE`] plus
//! its creation time, above every date, so it goes last in ascending order; the list reads
//! undated tasks in a phase of their own when sorting by `-due`, so they go last there too.
//! Ties (same key) are broken by [`OrderKeys::tie`], the top 46 bits of the task id, and then
//! by the full id: the order is always (key, id), and a tie key that is monotonic in the id
//! lets the store break nearly every tie itself.
//!
//! The title order (the lower-cased title, character by character) fits no fixed-width number,
//! so `title` is a *group* key ([`title_group`]): the first characters of the lower-cased title
//! as base-99 digits, never decreasing along the title order. The store sorts and range-filters
//! groups; the list reads a group whole and orders it by the full title itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::task::{Priority, Task};

/// The object a stored task carries its keys in: `value->'_order'->>'created'` and so on.
pub const FIELD: &str = "_order";

/// Payloads are below this: fourteen decimal digits.
pub const PAYLOAD_LIMIT: u64 = 100_000_000_000_000;

/// The `due` payload of a task without a due time, before its creation time is added: above
/// every date the validation accepts (the year 9999 ends at 2.54×10^13 centiseconds).
pub const UNDATED_DUE: u64 = 90_000_000_000_000;

/// Milliseconds fit below this until the year 2286; ranks and the undated mark sit above.
const MILLIS_LIMIT: u64 = 10_000_000_000_000;

/// A task's keys, as stored under [`FIELD`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderKeys {
    pub created: String,
    pub updated: String,
    pub due: String,
    pub priority: String,
    pub tie: String,
    pub title: String,
}

impl OrderKeys {
    pub fn of(task: &Task) -> Self {
        let created = millis(task.created_at);
        Self {
            created: encode(created),
            updated: encode(millis(task.updated_at)),
            due: encode(task.due.map_or(UNDATED_DUE + created, |due| due_payload(due.with_timezone(&Utc)))),
            priority: encode(priority_rank(task.priority) * MILLIS_LIMIT + created),
            tie: tie(task.id),
            title: title_group(&task.title.to_lowercase()),
        }
    }
}

/// The base of the title group's digits: 0 ends the title, 1 is any control character, 2 to
/// 96 are the printable ASCII characters, 97 is DEL and 98 opens any other character.
const TITLE_BASE: u64 = 99;

/// Digits in a title group: 99^7 is below [`PAYLOAD_LIMIT`], 99^8 is not.
const TITLE_DIGITS: usize = 7;

/// The most code point offsets (above 127) three base-99 digits tell apart; larger ones (from
/// U+ECEBA, private use and unassigned planes) share the last value.
const TITLE_ESCAPE_MAX: u32 = 99 * 99 * 99 - 1;

/// The title group key of `lowered` (a title already lower-cased with `str::to_lowercase`, as
/// the list sorts it): its first characters as seven base-99 digits.
///
/// Printable ASCII takes one digit each, so titles that differ in their first seven ASCII
/// characters fall in different groups; any other character takes four (98, then its code point
/// offset in three digits). A character that shares its digits with others (control characters,
/// DEL, code points from U+ECEBA) ends the digits: whatever follows it could disagree with the
/// order between the characters it stands for. So the key never decreases along the title
/// order, which is all the list needs (a proptest checks it).
pub fn title_group(lowered: &str) -> String {
    let mut digits: Vec<u64> = Vec::with_capacity(TITLE_DIGITS + 3);
    for c in lowered.chars() {
        let lossy = match u32::from(c) {
            code @ 0x20..=0x7e => {
                digits.push(u64::from(code) - 30);
                false
            }
            0..=0x1f => {
                digits.push(1);
                true
            }
            0x7f => {
                digits.push(97);
                true
            }
            code => {
                let offset = (code - 0x80).min(TITLE_ESCAPE_MAX);
                let offset = u64::from(offset);
                digits.extend([
                    98,
                    offset / (TITLE_BASE * TITLE_BASE),
                    offset / TITLE_BASE % TITLE_BASE,
                    offset % TITLE_BASE,
                ]);
                offset == u64::from(TITLE_ESCAPE_MAX)
            }
        };
        if lossy || digits.len() >= TITLE_DIGITS {
            break;
        }
    }
    digits.resize(TITLE_DIGITS, 0);
    encode(digits.iter().fold(0, |payload, digit| payload * TITLE_BASE + digit))
}

/// The key of `payload` (clamped below [`PAYLOAD_LIMIT`]).
pub fn encode(payload: u64) -> String {
    let digits = format!("{}", PAYLOAD_LIMIT + payload.min(PAYLOAD_LIMIT - 1));
    let (int, frac) = digits.split_at(6);
    match frac.trim_end_matches('0') {
        "" => int.to_owned(),
        frac => format!("{int}.{frac}"),
    }
}

/// A key as the number a Query API range filter needs (see the module doc); `None` for a
/// string that is not a key.
pub fn as_number(key: &str) -> Option<serde_json::Number> {
    let valid = key.len() >= 6
        && key.starts_with('1')
        && key.as_bytes()[..6].iter().all(u8::is_ascii_digit)
        && match &key[6..] {
            "" => true,
            rest => {
                rest.len() >= 2
                    && rest.len() <= 10
                    && rest.starts_with('.')
                    && rest[1..].bytes().all(|b| b.is_ascii_digit())
                    && !rest.ends_with('0')
            }
        };
    if !valid {
        return None;
    }
    // An integral key as an integer: serde_json would write the float 190000.0 as `190000.0`.
    match key.parse::<u64>() {
        Ok(int) => Some(int.into()),
        Err(_) => serde_json::Number::from_f64(key.parse().ok()?),
    }
}

/// The `due` key of an instant: what a due-range filter compares with.
pub fn due_key(at: DateTime<Utc>) -> String {
    encode(due_payload(at))
}

/// The tie-break key of a task id: its top 46 bits, so ordering by it agrees with ordering by
/// id wherever it tells two ids apart.
pub fn tie(id: Uuid) -> String {
    encode(u64::try_from(id.as_u128() >> 82).unwrap_or(PAYLOAD_LIMIT - 1))
}

fn millis(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0).min(MILLIS_LIMIT - 1)
}

fn due_payload(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis().div_euclid(10)).unwrap_or(0).min(UNDATED_DUE - 1)
}

fn priority_rank(priority: Priority) -> u64 {
    match priority {
        Priority::Low => 0,
        Priority::Medium => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;

    /// Go's `fmt.Sprintf("%v", f)` for a float64: shortest digits, `%e` form when the decimal
    /// exponent is below -4 or at least 6 (strconv `FormatFloat(f, 'g', -1, 64)`).
    fn go_v(f: f64) -> String {
        let sci = format!("{f:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        if !(-4..6).contains(&exp) {
            let sign = if exp < 0 { '-' } else { '+' };
            return format!("{mantissa}e{sign}{:02}", exp.abs());
        }
        format!("{f}")
    }

    #[test]
    fn keys_have_the_documented_shape() {
        assert_eq!(encode(0), "100000");
        assert_eq!(encode(3), "100000.000000003");
        assert_eq!(encode(1_765_000_000_000), "101765");
        assert_eq!(encode(1_765_000_000_123), "101765.000000123");
        assert_eq!(encode(UNDATED_DUE), "190000");
        assert_eq!(encode(u64::MAX), encode(PAYLOAD_LIMIT - 1));
        assert_eq!(encode(PAYLOAD_LIMIT - 1), "199999.999999999");
    }

    #[test]
    fn go_v_is_what_go_prints() {
        // Outputs of `fmt.Sprintf("%v", x)` for float64s decoded by encoding/json (go1.26).
        assert_eq!(go_v(123456.78901234), "123456.78901234");
        assert_eq!(go_v(1234567.0), "1.234567e+06");
        assert_eq!(go_v(999999.0), "999999");
        assert_eq!(go_v(100000.5), "100000.5");
        assert_eq!(go_v(123456789012345.0), "1.23456789012345e+14");
        assert_eq!(go_v(0.00001), "1e-05");
    }

    #[test]
    fn dates_and_ranks_order_as_their_keys() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert!(due_key(at("1970-01-01T00:00:00Z")) < due_key(at("2026-12-06T10:00:00Z")));
        assert!(due_key(at("2026-12-06T10:00:00Z")) < due_key(at("9999-12-31T23:59:59.999Z")));
        assert!(due_key(at("9999-12-31T23:59:59.999Z")) < encode(UNDATED_DUE));
        // Priority first, creation time second: the oldest low task is below the newest one,
        // which is below any medium task.
        let task = |priority, created: &str| {
            OrderKeys::of(&Task {
                id: Uuid::nil(),
                owner: "alice".into(),
                title: "t".into(),
                description: String::new(),
                priority,
                tags: Default::default(),
                status: Default::default(),
                due: None,
                time_zone: chrono_tz::Tz::UTC,
                reminder: None,
                recurrence: None,
                series: None,
                created_at: at(created),
                updated_at: at(created),
                completed_at: None,
                deleted_at: None,
                version: 1,
                request_digest: None,
            })
        };
        let keys = [
            task(Priority::Low, "2026-01-01T00:00:00Z"),
            task(Priority::Low, "2286-01-01T00:00:00Z"),
            task(Priority::Medium, "1970-01-01T00:00:00Z"),
            task(Priority::High, "2026-01-01T00:00:00Z"),
            task(Priority::Urgent, "2026-01-01T00:00:00Z"),
        ];
        assert!(keys.windows(2).all(|w| w[0].priority < w[1].priority), "{keys:?}");
        // Undated: after every date, then by creation.
        assert!(keys[0].due > due_key(at("9999-12-31T23:59:59.999Z")));
        assert!(keys[0].due < keys[1].due);
    }

    #[test]
    fn non_keys_are_not_numbers() {
        for bad in
            ["", "1", "99999", "200000x", "012345", "100000.", "100000.10", "1e+06", "1000001", "100000.1234567891"]
        {
            assert_eq!(as_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn title_groups_are_the_first_characters() {
        let group = |s: &str| title_group(&s.to_lowercase());
        assert_eq!(group("a"), encode(67 * 99u64.pow(6)));
        assert_eq!(group("Buy milk"), group("buy mil"), "seven ASCII characters, case folded");
        assert!(group("buy mil") < group("buy mim"));
        assert!(group("buy") < group("buy milk") && group("") < group(" "));
        assert!(group("zzzzzzz") < group("é"), "any other character is above ASCII");
        assert!(group("é") < group("ê") && group("éa") < group("éb"), "exact for 3 more digits");
        assert_eq!(group("\u{f0000}a"), group("\u{10ffff}"), "the highest planes share one group");
        assert_eq!(group("a\u{1}z"), group("a\u{2}a"), "control characters end the key");
        assert_eq!(group(&"x".repeat(200)), group("xxxxxxx"));
    }

    /// Characters from every width and the lossy classes.
    fn title_text() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            4 => proptest::char::range(' ', '~'),
            2 => proptest::char::range('A', 'Z'),
            1 => proptest::char::range('\u{0}', '\u{1f}'),
            1 => Just('\u{7f}'),
            2 => proptest::char::range('\u{80}', '\u{7ff}'),
            1 => proptest::char::range('\u{4e00}', '\u{4e10}'),
            1 => proptest::char::range('\u{ece00}', '\u{10ffff}'),
            1 => prop_oneof![Just('İ'), Just('Σ'), Just('ß'), Just('K')],
        ];
        proptest::collection::vec(c, 0..12).prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        /// The group never decreases along the order the list sorts titles in.
        #[test]
        fn title_groups_follow_the_title_order(a in title_text(), b in title_text()) {
            let (la, lb) = (a.to_lowercase(), b.to_lowercase());
            if la <= lb {
                prop_assert!(title_group(&la) <= title_group(&lb), "{:?} {:?}", la, lb);
            }
            prop_assert!(as_number(&title_group(&la)).is_some());
        }

        /// A key reaches PostgreSQL as the very text it is stored as: serde_json writes the
        /// number with the key's digits, and Go prints the parsed float64 the same way.
        #[test]
        fn keys_survive_the_round_trip_through_daprd(
            payload in prop_oneof![0..PAYLOAD_LIMIT, (0..PAYLOAD_LIMIT / 1_000_000_000).prop_map(|p| p * 1_000_000_000)]
        ) {
            let key = encode(payload);
            let number = as_number(&key).unwrap();
            prop_assert_eq!(number.to_string(), key.clone());
            prop_assert_eq!(go_v(number.as_f64().unwrap()), key);
        }

        /// Text order of keys is numeric order of payloads, byte-wise and with the point
        /// ignored (what a locale collation does with punctuation).
        #[test]
        fn text_order_is_payload_order(a in 0..PAYLOAD_LIMIT, b in 0..PAYLOAD_LIMIT) {
            let (ka, kb) = (encode(a), encode(b));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(ka.replace('.', "").cmp(&kb.replace('.', "")), a.cmp(&b));
        }

        /// The tie key never contradicts the id order.
        #[test]
        fn tie_is_monotonic_in_the_id(a: u128, b: u128) {
            let (ia, ib) = (Uuid::from_u128(a), Uuid::from_u128(b));
            if ia < ib {
                prop_assert!(tie(ia) <= tie(ib));
            }
        }
    }
}
