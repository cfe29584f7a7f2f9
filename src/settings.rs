//! Reading named settings (environment variables) through a lookup function,
//! with the rules every setting follows: an empty value counts as unset, a
//! value that can never work is refused with one line naming the setting.
//! [`crate::config`] and [`crate::telemetry`] both read theirs with it.

use std::{str::FromStr, time::Duration};

use anyhow::bail;

/// Settings read through a lookup (the process environment, or a map in
/// tests), so that tests can record which names are read.
pub struct Settings<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Settings<'a> {
    /// Settings read through `lookup`.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    /// The trimmed value of `name`; `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Whether `name` is set to anything.
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A switch: `1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`, in
    /// any case; `default` when unset.
    pub fn flag(&self, name: &str, default: bool) -> anyhow::Result<bool> {
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some(other) => bail!("{name} must be true or false, not {other:?}"),
        }
    }

    /// A value parsed as `T`; refused as "not {what}" when it does not parse.
    pub fn parse<T: FromStr>(&self, name: &str, what: &str) -> anyhow::Result<Option<T>> {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| anyhow::anyhow!("{name}={v:?} is not {what}"))
            })
            .transpose()
    }

    /// A whole number of milliseconds between 1 and `max`, as the
    /// OpenTelemetry settings give durations.
    pub fn millis(&self, name: &str, max: Duration) -> anyhow::Result<Option<Duration>> {
        let Some(ms) = self.parse::<u64>(name, "a number of milliseconds")? else {
            return Ok(None);
        };
        if ms == 0 || u128::from(ms) > max.as_millis() {
            bail!(
                "{name}={ms} is out of range: it must be between 1 and {} milliseconds",
                max.as_millis()
            );
        }
        Ok(Some(Duration::from_millis(ms)))
    }

    /// One of `choices` (compared in lower case); `None` when unset.
    pub fn choice(
        &self,
        name: &str,
        choices: &[&'static str],
    ) -> anyhow::Result<Option<&'static str>> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let lower = value.to_ascii_lowercase();
        match choices.iter().find(|c| **c == lower) {
            Some(choice) => Ok(Some(choice)),
            None => bail!(
                "{name} must be one of {}, not {value:?}",
                choices.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<T>(vars: &[(&str, &str)], f: impl FnOnce(&Settings<'_>) -> T) -> T {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        f(&Settings::new(&lookup))
    }

    #[test]
    fn blank_is_unset_and_values_are_trimmed() {
        with(&[("A", "  "), ("B", " x ")], |s| {
            assert_eq!(s.get("A"), None);
            assert_eq!(s.get("B").as_deref(), Some("x"));
            assert!(!s.is_set("A"));
        });
    }

    #[test]
    fn flags_choices_and_numbers_refuse_what_can_never_work() {
        with(
            &[("F", "On"), ("G", "maybe"), ("C", "JSON"), ("N", "0")],
            |s| {
                assert!(s.flag("F", false).unwrap());
                assert!(s.flag("unset", true).unwrap());
                let e = s.flag("G", false).unwrap_err().to_string();
                assert_eq!(e, "G must be true or false, not \"maybe\"");
                assert_eq!(s.choice("C", &["text", "json"]).unwrap(), Some("json"));
                assert!(s.choice("G", &["text", "json"]).is_err());
                let e = s
                    .millis("N", Duration::from_secs(1))
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("between 1 and 1000"), "{e}");
                assert!(s.parse::<u32>("G", "a number").is_err());
            },
        );
    }
}
