//! A small command-line parser: `--flag value` options and positionals,
//! with errors that name the flag.

use anyhow::{Result, anyhow, bail};

/// Options and positionals of one command.
pub(crate) struct Args {
    options: Vec<(String, Option<String>)>,
    pub(crate) positional: Vec<String>,
}

impl Args {
    /// Splits `raw`; `flags` are the options that take no value.
    pub(crate) fn parse(raw: &[String], with_value: &[&str], flags: &[&str]) -> Result<Args> {
        let mut options = Vec::new();
        let mut positional = Vec::new();
        let mut iter = raw.iter();
        while let Some(arg) = iter.next() {
            if arg == "--" {
                positional.extend(iter.by_ref().cloned());
                break;
            }
            if let Some(name) = arg.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (name, None),
                };
                if with_value.contains(&name) {
                    let value = match inline {
                        Some(v) => v,
                        None => iter
                            .next()
                            .cloned()
                            .ok_or_else(|| anyhow!("--{name} needs a value"))?,
                    };
                    options.push((name.to_string(), Some(value)));
                } else if flags.contains(&name) {
                    options.push((name.to_string(), None));
                } else {
                    bail!("unknown option --{name}; run `warmlane help`");
                }
            } else {
                positional.push(arg.clone());
            }
        }
        Ok(Args {
            options,
            positional,
        })
    }

    /// The last value given for `--name`.
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether `--name` was given.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| n == name)
    }

    /// `--name` parsed as a number, if given.
    pub(crate) fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.value(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| anyhow!("--{name} takes a number, not `{v}`"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_flags_and_positionals() {
        let a = Args::parse(
            &s(&[
                "a.pdf",
                "--workers",
                "2",
                "--quiet",
                "--unit=characters",
                "b.pdf",
            ]),
            &["workers", "unit"],
            &["quiet"],
        )
        .unwrap();
        assert_eq!(a.positional, s(&["a.pdf", "b.pdf"]));
        assert_eq!(a.number::<usize>("workers").unwrap(), Some(2));
        assert_eq!(a.value("unit"), Some("characters"));
        assert!(a.flag("quiet"));
    }

    #[test]
    fn errors_name_the_option() {
        let e = Args::parse(&s(&["--bogus"]), &[], &[]).err().unwrap();
        assert!(e.to_string().contains("--bogus"));
        let e = Args::parse(&s(&["--workers"]), &["workers"], &[])
            .err()
            .unwrap();
        assert!(e.to_string().contains("--workers"));
        let a = Args::parse(&s(&["--workers", "x"]), &["workers"], &[]).unwrap();
        assert!(
            a.number::<usize>("workers")
                .unwrap_err()
                .to_string()
                .contains("`x`")
        );
    }
}
