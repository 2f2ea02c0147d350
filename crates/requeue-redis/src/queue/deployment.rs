//! Which kind of Redis deployment a URL names: one server, a Redis
//! Cluster, or a master managed by Sentinel. Parsing only; the
//! connections are made in `connection`.
//!
//! | URL | deployment |
//! |---|---|
//! | `redis://…`, `rediss://…`, `redis+unix://…`, `unix://…` | one server, as `redis::Client::open` reads it |
//! | `redis+cluster://[user:password@]host:port[,host:port…][?query]` | a Redis Cluster reached through any of the listed nodes (`rediss+cluster://` over TLS); the query goes to every node |
//! | `redis+sentinel://[user:password@]host:port[,host:port…]/master[/db][?sentinel_username=…&sentinel_password=…]` | the master `master`, found through the listed sentinels (port 26379 when left out; `rediss+sentinel://` over TLS, to the sentinels and the master) |
//!
//! The user and password in a cluster or sentinel URL authenticate to the
//! data nodes; sentinels that require their own are given theirs in the
//! query. Every part is percent-decoded as in any URL.

use crate::redact::RedactedUrl;

/// The sentinels' default port.
const SENTINEL_PORT: u16 = 26379;

/// A parsed queue URL.
#[derive(PartialEq, Eq)]
pub(crate) enum Deployment {
    /// One server: the URL as given.
    Single(String),
    /// A Redis Cluster: the URLs of the nodes to discover it from.
    Cluster(Vec<String>),
    /// A master managed by Sentinel.
    Sentinel(SentinelSpec),
}

/// Where the sentinels are, which master to ask them for, and how to
/// authenticate. No `Debug`: it holds passwords.
#[derive(PartialEq, Eq)]
pub(crate) struct SentinelSpec {
    /// TLS to the sentinels and to the master (`rediss+sentinel://`).
    pub(crate) tls: bool,
    /// `redis://host:port` (or `rediss://`) of each sentinel, without credentials.
    pub(crate) sentinels: Vec<String>,
    /// The name the sentinels monitor the master under.
    pub(crate) master: String,
    /// The database on the master.
    pub(crate) db: i64,
    /// The master's (and replicas') user and password.
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// The sentinels' own user and password, if they require one.
    pub(crate) sentinel_username: Option<String>,
    pub(crate) sentinel_password: Option<String>,
}

impl Deployment {
    /// Reads `url`. An error says what is wrong without repeating the URL
    /// (the caller names it, redacted).
    pub(crate) fn parse(url: &str) -> Result<Deployment, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Ok(Deployment::Single(url.to_owned()));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis+cluster" => cluster(false, rest),
            "rediss+cluster" => cluster(true, rest),
            "redis+sentinel" => sentinel(false, rest),
            "rediss+sentinel" => sentinel(true, rest),
            _ => Ok(Deployment::Single(url.to_owned())),
        }
    }

    /// The deployment of `url`, or [`Error::InvalidConfig`](crate::error::Error::InvalidConfig)
    /// naming the URL without its credentials.
    pub(crate) fn of(url: &str) -> Result<Deployment, crate::error::Error> {
        Deployment::parse(url).map_err(|reason| {
            crate::error::Error::InvalidConfig(format!(
                "cannot use the Redis URL {}: {reason}",
                crate::error::shorten(RedactedUrl::new(url).as_str())
            ))
        })
    }
}

/// A URL's parts after the scheme: `[userinfo@]hosts[/path][?query]`. The
/// authority ends at the first `/`, `?` or `#`; the user info at its last
/// `@` (as the `url` crate reads it).
struct Parts<'a> {
    userinfo: Option<&'a str>,
    hosts: Vec<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

fn split(rest: &str) -> Result<Parts<'_>, String> {
    let (rest, _fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    if hosts.iter().any(|h| h.is_empty()) {
        return Err("it needs at least one host, and no empty entry in its list".into());
    }
    Ok(Parts {
        userinfo,
        hosts,
        path,
        query,
    })
}

fn cluster(tls: bool, rest: &str) -> Result<Deployment, String> {
    let parts = split(rest)?;
    if !matches!(parts.path, "" | "/" | "/0") {
        return Err("a Redis Cluster has only database 0; leave the path out".into());
    }
    let scheme = if tls { "rediss" } else { "redis" };
    let userinfo = parts.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let query = parts.query.map(|q| format!("?{q}")).unwrap_or_default();
    Ok(Deployment::Cluster(
        parts
            .hosts
            .iter()
            .map(|host| format!("{scheme}://{userinfo}{host}/{query}"))
            .collect(),
    ))
}

fn sentinel(tls: bool, rest: &str) -> Result<Deployment, String> {
    let parts = split(rest)?;
    let mut path = parts.path.trim_start_matches('/').split('/');
    let master = percent_decode(path.next().unwrap_or_default())?;
    if master.is_empty() {
        return Err("it must name the master the sentinels monitor: …/<master name>".into());
    }
    let db = match path.next() {
        None | Some("") => 0,
        Some(db) => db
            .parse()
            .map_err(|_| format!("{db:?} is not a database number"))?,
    };
    if path.next().is_some() {
        return Err("its path is /<master name>[/<db>]".into());
    }
    let (username, password) = match parts.userinfo {
        Some(userinfo) => credentials(userinfo)?,
        None => (None, None),
    };
    let (mut sentinel_username, mut sentinel_password) = (None, None);
    for pair in parts.query.unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("sentinel_username", value)) => sentinel_username = Some(percent_decode(value)?),
            Some(("sentinel_password", value)) => sentinel_password = Some(percent_decode(value)?),
            None if pair.is_empty() => {}
            _ => {
                let name = pair.split_once('=').map_or(pair, |(name, _)| name);
                return Err(format!(
                    "unknown parameter {:?} (sentinel URLs take sentinel_username and sentinel_password)",
                    crate::error::shorten(name)
                ));
            }
        }
    }
    let scheme = if tls { "rediss" } else { "redis" };
    let sentinels = parts
        .hosts
        .iter()
        .map(|host| {
            let has_port = host
                .rsplit_once(':')
                .is_some_and(|(_, port)| !port.ends_with(']'));
            if has_port {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}:{SENTINEL_PORT}")
            }
        })
        .collect();
    Ok(Deployment::Sentinel(SentinelSpec {
        tls,
        sentinels,
        master,
        db,
        username,
        password,
        sentinel_username,
        sentinel_password,
    }))
}

/// `user:password`, `:password` or `user`, decoded; empty parts are absent.
fn credentials(userinfo: &str) -> Result<(Option<String>, Option<String>), String> {
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    Ok((
        nonempty(percent_decode(user)?),
        password.map(percent_decode).transpose()?.and_then(nonempty),
    ))
}

/// `%XX` escapes decoded, as UTF-8. The error never shows the input (it
/// may be a password).
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a % escape in it is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a % escape in it does not decode to UTF-8".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sentinel_spec(url: &str) -> SentinelSpec {
        match Deployment::parse(url).unwrap() {
            Deployment::Sentinel(spec) => spec,
            _ => panic!("not a sentinel URL"),
        }
    }

    #[test]
    fn plain_urls_are_one_server() {
        for url in [
            "redis://127.0.0.1:6379/2",
            "rediss://u:p@host/",
            "redis+unix:///tmp/r.sock",
            "unix:///tmp/r.sock",
            "local",
        ] {
            assert!(Deployment::parse(url).unwrap() == Deployment::Single(url.into()));
        }
    }

    #[test]
    fn a_cluster_url_lists_its_seed_nodes() {
        let parsed =
            Deployment::parse("redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2:7001").unwrap();
        assert!(
            parsed
                == Deployment::Cluster(vec![
                    "redis://u:p%40ss@10.0.0.1:7000/".into(),
                    "redis://u:p%40ss@10.0.0.2:7001/".into(),
                ])
        );
        let parsed = Deployment::parse("rediss+cluster://h:1/?protocol=resp3").unwrap();
        assert!(parsed == Deployment::Cluster(vec!["rediss://h:1/?protocol=resp3".into()]));
        assert!(Deployment::parse("redis+cluster://h:1/3").is_err());
        assert!(Deployment::parse("redis+cluster://h:1,,h:2").is_err());
        assert!(Deployment::parse("redis+cluster://").is_err());
    }

    #[test]
    fn a_sentinel_url_names_sentinels_master_db_and_credentials() {
        let spec = sentinel_spec(
            "redis+sentinel://app:s%3Acret@10.0.0.1:26380,10.0.0.2,[::1]/my%20master/3?sentinel_password=x%26y",
        );
        assert!(!spec.tls);
        assert_eq!(
            spec.sentinels,
            [
                "redis://10.0.0.1:26380",
                "redis://10.0.0.2:26379",
                "redis://[::1]:26379"
            ]
        );
        assert_eq!(spec.master, "my master");
        assert_eq!(spec.db, 3);
        assert_eq!(spec.username.as_deref(), Some("app"));
        assert_eq!(spec.password.as_deref(), Some("s:cret"));
        assert_eq!(spec.sentinel_username, None);
        assert_eq!(spec.sentinel_password.as_deref(), Some("x&y"));

        let spec = sentinel_spec("rediss+sentinel://:pw@h:1/m");
        assert!(spec.tls);
        assert_eq!(spec.sentinels, ["rediss://h:1"]);
        assert_eq!(
            (spec.username, spec.password.as_deref()),
            (None, Some("pw"))
        );
        assert_eq!(spec.db, 0);
    }

    #[test]
    fn bad_sentinel_urls_are_refused_without_showing_secrets() {
        for url in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h:1/m/x",
            "redis+sentinel://h:1/m/0/extra",
            "redis+sentinel://h:1/m?password=s3cret",
            "redis+sentinel://u:s3cret%zz@h:1/m",
        ] {
            let error = match Deployment::of(url) {
                Err(error) => error.to_string(),
                Ok(_) => panic!("{url} accepted"),
            };
            assert!(!error.contains("s3cret"), "{error}");
        }
    }
}
