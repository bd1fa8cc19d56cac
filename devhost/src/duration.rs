//! The two duration syntaxes Dapr resources and APIs use.
//!
//! - Go's `time.ParseDuration` (`10s`, `1h30m`, `500ms`, `1.5h`): Resiliency policies, component
//!   metadata, job `dueTime`/`ttl` and `@every` schedules (dapr/kit `time.ParseDuration` callers).
//! - protobuf `Duration` in protojson (`5s`, `0.5s`, seconds only): a job's
//!   `failurePolicy.constant.interval`, decoded by protojson in dapr/dapr `pkg/api/http/universal.go`,
//!   so `"200ms"` is a 400 there, and here.

use std::time::Duration;

/// Parses a Go duration string. Negative durations are rejected: nothing devhost reads may be
/// negative.
pub fn parse_go(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let bad = || format!("{input:?} is not a Go duration (like 10s, 1m30s, 500ms, 1.5h)");
    if s.is_empty() {
        return Err(bad());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("{input:?}: negative durations are not allowed"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a protojson `google.protobuf.Duration`: decimal seconds with an `s` suffix.
pub fn parse_proto(input: &str) -> Result<Duration, String> {
    let bad = || format!("{input:?} is not a protobuf Duration (seconds with an `s` suffix, like \"5s\" or \"0.5s\")");
    let number = input.strip_suffix('s').ok_or_else(bad)?;
    if number.is_empty() || number.starts_with('-') || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    if let Some((_, fraction)) = number.split_once('.')
        && fraction.len() > 9
    {
        return Err(bad());
    }
    let seconds: f64 = number.parse().map_err(|_| bad())?;
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a duration as protojson does (`1s`, `0.500s` → we print the shortest form `0.5s`).
pub fn format_proto(duration: Duration) -> String {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if nanos == 0 {
        return format!("{secs}s");
    }
    let fraction = format!("{nanos:09}");
    format!("{secs}.{}s", fraction.trim_end_matches('0'))
}

/// Formats a duration as Go's `time.Duration.String` does (`500ms`, `5s`, `1m30s`, `1h0m0s`), to
/// whole milliseconds.
pub fn go_string(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, (ms / 60_000) % 60);
    let s = (ms % 60_000) as f64 / 1000.0;
    let seconds = format!("{s}s");
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_go("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_go("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go("0").unwrap(), Duration::ZERO);
        assert!(parse_go("10").is_err());
        assert!(parse_go("-1s").is_err());
        assert!(parse_go("1d").is_err());
        assert!(parse_go("").is_err());
    }

    #[test]
    fn proto_durations() {
        assert_eq!(parse_proto("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_proto("0.5s").unwrap(), Duration::from_millis(500));
        assert!(parse_proto("200ms").is_err());
        assert!(parse_proto("2m").is_err());
        assert_eq!(format_proto(Duration::from_millis(500)), "0.5s");
        assert_eq!(format_proto(Duration::from_secs(3)), "3s");
    }

    #[test]
    fn go_strings() {
        assert_eq!(go_string(Duration::from_millis(500)), "500ms");
        assert_eq!(go_string(Duration::from_secs(5)), "5s");
        assert_eq!(go_string(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_string(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_string(Duration::from_secs(3600)), "1h0m0s");
    }
}
