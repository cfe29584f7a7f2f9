//! The origins whose pages may call the API from a browser: the value of
//! `CORS_ALLOWED_ORIGINS`, checked when the settings are read (so a value
//! that can never match stops the service at once) and asked by the CORS
//! middleware (`api::cors`) on every cross-origin request.

use std::str::FromStr;

use http::HeaderValue;

/// The origins allowed to call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any origin (answered `Access-Control-Allow-Origin: *`).
    Any,
    /// Exact origins (`scheme://host[:port]`), answered with the origin itself.
    List(Vec<HeaderValue>),
}

impl FromStr for AllowedOrigins {
    type Err = String;

    /// A comma-separated list of origins, or `*` alone.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let entries: Vec<&str> = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Err("CORS_ALLOWED_ORIGINS names no origin".into());
        }
        if entries.contains(&"*") {
            return match entries.len() {
                1 => Ok(Self::Any),
                _ => Err(
                    "CORS_ALLOWED_ORIGINS: `*` allows every origin; list no others with it".into(),
                ),
            };
        }
        entries
            .into_iter()
            .map(parse_origin)
            .collect::<Result<_, _>>()
            .map(Self::List)
    }
}

/// One origin as a browser sends it: `http` or `https`, a host, an optional
/// port, nothing after (a trailing `/` or a path would never match).
fn parse_origin(entry: &str) -> Result<HeaderValue, String> {
    let bad = |why: &str| {
        Err(format!(
            "CORS_ALLOWED_ORIGINS: {entry:?} is not an origin ({why}; e.g. http://localhost:5173)"
        ))
    };
    let lower = entry.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return bad("no scheme");
    };
    if scheme != "http" && scheme != "https" {
        return bad("the scheme must be http or https");
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return bad("only scheme://host[:port], no path, no trailing slash");
    }
    HeaderValue::from_str(&lower).or_else(|_| bad("not a valid header value"))
}

impl AllowedOrigins {
    /// Whether a page on `origin` may call the API.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.contains(origin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_origins_or_a_lone_star() {
        assert_eq!("*".parse(), Ok(AllowedOrigins::Any));
        assert_eq!(
            " http://localhost:5173 , HTTPS://App.Example.com ,".parse(),
            Ok(AllowedOrigins::List(vec![
                HeaderValue::from_static("http://localhost:5173"),
                HeaderValue::from_static("https://app.example.com"),
            ]))
        );
        for bad in [
            "",
            " , ",
            "*,http://a.example",
            "localhost:5173",
            "ftp://a.example",
            "http://a.example/",
            "http://a.example/app",
            "http://",
            "http://user@a.example",
        ] {
            let err = bad.parse::<AllowedOrigins>().unwrap_err();
            assert!(err.contains("CORS_ALLOWED_ORIGINS"), "{bad:?}: {err}");
        }
    }
}
