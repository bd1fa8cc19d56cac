//! `task-api dev-token <user> [--ttl-hours N]`: prints a bearer token for local development.
//!
//! It signs with the same `JWT_SECRET` (and `JWT_ISSUER` / `JWT_AUDIENCE`, when set) the server
//! reads, so `make run` can hand a working token to curl without an identity provider. It is
//! not a login: anyone with the secret can mint any user's token, which is exactly what a
//! development secret is for and what a production secret must never be used for.

use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::auth::{self, Claims, DEFAULT_DEV_TTL};
use crate::config::Config;

/// Longest lifetime a development token may have: a year. Longer is a typo or a bad idea.
pub const MAX_TTL_HOURS: u64 = 24 * 366;

pub const USAGE: &str =
    "usage: task-api dev-token <user> [--ttl-hours N]   (reads JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub user: String,
    pub ttl: Duration,
}

/// Parses the arguments after `dev-token`.
pub fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    let mut user = None;
    let mut ttl = DEFAULT_DEV_TTL;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let hours = match arg.as_str() {
            "--ttl-hours" => Some(rest.next().context(USAGE)?.as_str()),
            other => other.strip_prefix("--ttl-hours="),
        };
        match hours {
            Some(hours) => {
                let hours: u64 = hours.parse().ok().filter(|h| (1..=MAX_TTL_HOURS).contains(h)).with_context(|| {
                    format!("--ttl-hours must be a whole number of hours from 1 to {MAX_TTL_HOURS}\n{USAGE}")
                })?;
                ttl = Duration::from_secs(hours * 3600);
            }
            None if arg.starts_with("--") => bail!("unknown option {arg}\n{USAGE}"),
            None if user.is_none() => user = Some(arg.clone()),
            None => bail!("unexpected argument {arg:?}\n{USAGE}"),
        }
    }
    let user = user.context(USAGE)?;
    Ok(Args { user, ttl })
}

/// A token for `args` under `config`.
pub fn token(config: &Config, args: &Args) -> anyhow::Result<String> {
    auth::check_user_id(&args.user).map_err(anyhow::Error::msg)?;
    auth::sign(config.secret(), &Claims::new(&args.user, args.ttl).for_config(config))
}

/// The subcommand: configuration from the environment, the token as the result.
pub fn run(args: &[String]) -> anyhow::Result<String> {
    let args = parse_args(args)?;
    let config = Config::from_env()?;
    token(&config, &args)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::auth::Authenticator;

    fn args(list: &[&str]) -> anyhow::Result<Args> {
        parse_args(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_user_and_ttl() {
        assert_eq!(args(&["alice"]).unwrap(), Args { user: "alice".into(), ttl: DEFAULT_DEV_TTL });
        assert_eq!(args(&["alice", "--ttl-hours", "2"]).unwrap().ttl, Duration::from_secs(7200));
        assert_eq!(
            args(&["--ttl-hours=3", "bob"]).unwrap(),
            Args { user: "bob".into(), ttl: Duration::from_secs(10800) }
        );
    }

    #[test]
    fn refuses_bad_arguments() {
        for bad in [
            &[][..],
            &["alice", "bob"],
            &["alice", "--ttl-hours"],
            &["alice", "--ttl-hours", "0"],
            &["alice", "--ttl-hours", "x"],
            &["alice", "--ttl=2"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_token_passes_the_servers_own_checks() {
        let mut config = Config::with_secret("0123456789abcdef0123456789abcdef");
        config.jwt_issuer = Some("dev".into());
        config.jwt_audience = Some("task-api".into());
        let token = token(&config, &args(&["alice", "--ttl-hours", "1"]).unwrap()).unwrap();
        assert_eq!(Authenticator::new(&config).verify(&token).unwrap().id, "alice");
        assert!(super::token(&config, &args(&[" "]).unwrap()).is_err(), "an empty user is refused");
    }
}
