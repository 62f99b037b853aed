//! The `server.database` value: where records are kept, shown without its password.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where records are kept. `Debug` and `Display` never show a PostgreSQL password.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// Memory only.
    Memory,
    /// PostgreSQL (`postgres://` or `postgresql://` URL), shared by several instances.
    Postgres(String),
}

impl Database {
    /// The `server.database` value (`at`: a relative path taken from the configuration's
    /// directory), or the rule it breaks. Memory is one process's and nothing durable: only
    /// on a loopback `listen`, so it cannot be one of several instances behind one name.
    pub fn parse(value: &str, at: &dyn Fn(&Path) -> PathBuf, listen: SocketAddr) -> Result<Database, &'static str> {
        if value.len() > 4096 {
            return Err("at most 4 KiB");
        }
        let database = if value == "memory" {
            Database::Memory
        } else if let Some(rest) = value.strip_prefix("sqlite:") {
            Database::Sqlite(at(Path::new(rest)))
        } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Database::Postgres(value.to_owned())
        } else if value.contains("://") {
            return Err("sqlite:PATH, a path, postgres://..., or memory");
        } else {
            Database::Sqlite(at(Path::new(value)))
        };
        if database == Database::Memory && !listen.ip().is_loopback() {
            return Err(
                "memory only on a loopback address (one process, nothing durable; several instances share postgres://)",
            );
        }
        Ok(database)
    }

    /// A PostgreSQL URL with its password, if any, replaced by `***`: the one in the user
    /// information (everything up to the last `@` is taken as user information, so a password
    /// holding `/`, `?`, `#` or `@` is hidden whole), and a `password` parameter of the query.
    /// What cannot be told apart is hidden: the answer may hide more than the password, never
    /// less.
    pub fn redacted(url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else { return "(not a URL: not shown)".to_owned() };
        let (userinfo, tail) = match rest.rfind('@') {
            Some(at) => (Some(rest.get(..at).unwrap_or_default()), rest.get(at + 1..).unwrap_or_default()),
            None => (None, rest),
        };
        let user = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, _)) if !user.contains(['/', '?', '#']) => format!("{user}:***@"),
                Some(_) => "***@".to_owned(),
                None if u.contains(['/', '?', '#']) => "***@".to_owned(),
                None => format!("{u}@"),
            },
            None => String::new(),
        };
        format!("{scheme}://{user}{}", Database::redact_query(tail))
    }

    /// `password=...` parameters of a URL's query replaced by `password=***`.
    fn redact_query(tail: &str) -> String {
        let Some((before, query)) = tail.split_once('?') else { return tail.to_owned() };
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        format!("{before}?{}", params.join("&"))
    }
}

impl core::fmt::Display for Database {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Database::Memory => f.write_str("memory"),
            Database::Postgres(url) => f.write_str(&Database::redacted(url)),
        }
    }
}

impl core::fmt::Debug for Database {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Database({self})")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::Database;

    #[test]
    fn a_postgres_password_is_never_shown() {
        let db = Database::Postgres("postgres://ekg:s3cret@db.internal:5432/ekg?connect_timeout=3".into());
        for shown in [db.to_string(), format!("{db:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("postgres://ekg:***@db.internal:5432/ekg?connect_timeout=3"), "{shown}");
        }
        assert_eq!(Database::Postgres("postgres://ekg@h/d".into()).to_string(), "postgres://ekg@h/d");
    }

    #[test]
    fn a_postgres_password_in_the_query_or_holding_separators_is_never_shown() {
        for (url, shown_as) in [
            (
                "postgres://ekg@db:5432/ekg?password=s3cret&connect_timeout=3",
                "postgres://ekg@db:5432/ekg?password=***&connect_timeout=3",
            ),
            ("postgres://db/ekg?user=ekg&PASSWORD=s3cret", "postgres://db/ekg?user=ekg&PASSWORD=***"),
            ("postgres://ekg:s3/cret@db/ekg", "postgres://ekg:***@db/ekg"),
            ("postgres://ekg:s3?c#r@et@db/ekg", "postgres://ekg:***@db/ekg"),
            ("postgresql://ekg:a/b?s3cret@db/ekg?password=s3cret", "postgresql://ekg:***@db/ekg?password=***"),
            ("s3cret", "(not a URL: not shown)"),
        ] {
            let db = Database::Postgres(url.into());
            for shown in [db.to_string(), format!("{db:?}")] {
                assert!(!shown.contains("s3") && !shown.contains("cret"), "{url} -> {shown}");
                assert!(shown.contains(shown_as), "{url} -> {shown}");
            }
        }
    }
}
