//! The configuration in layers — the defaults, then the `--config` file,
//! then `WARMLANE_` environment variables, then command-line flags — and
//! where each value in effect came from.
//!
//! An environment variable names a key by its path, sections separated by
//! a double underscore: `WARMLANE_REDIS__URL`, `WARMLANE_LANES__HEAVY__RUNNING`,
//! `WARMLANE_COMPONENTS__PDF_PAGES__WARM` (in a component's name `_` reads
//! as `-`). Its value is read as a TOML value where it is one of the right
//! type (`5`, `true`, `["light"]`), else as a string, else as a
//! comma-separated list of strings (of one, without a comma). Every `WARMLANE_` variable is a key,
//! except the few that are not configuration ([`NOT_KEYS`]): one that names
//! no key is refused, naming the variable.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use toml::{Table, Value};
use warmlane_host::Config;

/// `WARMLANE_` variables that are not configuration keys.
pub(crate) const NOT_KEYS: [&str; 4] = ["LOG", "LOG_FORMAT", "PRECOMPILE_CPU", "PERFMAP"];

const PREFIX: &str = "WARMLANE_";

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(var) => write!(f, "${var}"),
            Source::Flag(flag) => f.write_str(flag),
        }
    }
}

/// A configuration being built, layer on layer.
pub(crate) struct Layers {
    table: Table,
    /// The source of every value set by a layer, by dotted path.
    sources: BTreeMap<String, Source>,
}

impl Layers {
    /// The defaults, and over them `file`: its path and its text.
    pub(crate) fn new(file: Option<(&Path, &str)>) -> Result<Layers> {
        let mut layers = Layers {
            table: Table::new(),
            sources: BTreeMap::new(),
        };
        if let Some((path, text)) = file {
            let table: Table = toml::from_str(text)
                .with_context(|| format!("invalid config {}", path.display()))?;
            check(&table).with_context(|| format!("invalid config {}", path.display()))?;
            let mut leaves = Vec::new();
            collect_leaves(&table, "", &mut leaves);
            for leaf in leaves {
                layers
                    .sources
                    .insert(leaf, Source::File(path.to_path_buf()));
            }
            layers.table = table;
        }
        Ok(layers)
    }

    /// The `WARMLANE_` variables of `vars` over what is there.
    pub(crate) fn env(
        mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Layers> {
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(PREFIX))
            .filter(|(k, _)| !NOT_KEYS.contains(&&k[PREFIX.len()..]))
            .collect();
        vars.sort();
        for (var, raw) in vars {
            let path = env_path(&var[PREFIX.len()..]);
            let value = env_value(&path, &raw).map_err(|e| {
                let hint =
                    suggestion(&var).map_or(String::new(), |s| format!(" (did you mean {s}?)"));
                let e = e.to_string().trim().replace('\n', " ");
                anyhow::anyhow!("environment variable {var}: {e}{hint}")
            })?;
            self.set(&path, value, Source::Env(var));
        }
        Ok(self)
    }

    /// A command-line flag's value for the key at `path` (dotted).
    pub(crate) fn flag(mut self, flag: &'static str, path: &str, value: Value) -> Layers {
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        self.set(&path, value, Source::Flag(flag));
        self
    }

    fn set(&mut self, path: &[String], value: Value, source: Source) {
        let dotted = path.join(".");
        // A table set whole replaces what was under it.
        self.sources
            .retain(|k, _| !k.starts_with(&format!("{dotted}.")));
        insert_at(&mut self.table, path, value);
        self.sources.insert(dotted, source);
    }

    /// The configuration in effect, checked.
    pub(crate) fn config(&self) -> Result<Config> {
        let config: Config = Value::Table(self.table.clone()).try_into()?;
        config.validate()?;
        Ok(config)
    }

    /// Where the value at dotted `path` came from.
    pub(crate) fn source(&self, path: &str) -> Source {
        // The value itself, or the table it was set with.
        let mut at = path;
        loop {
            if let Some(s) = self.sources.get(at) {
                return s.clone();
            }
            match at.rsplit_once('.') {
                Some((parent, _)) => at = parent,
                None => return Source::Default,
            }
        }
    }
}

/// Whether `table` alone makes a configuration: unknown keys and wrong
/// types named.
fn check(table: &Table) -> Result<()> {
    Value::Table(table.clone()).try_into::<Config>()?;
    Ok(())
}

/// `REDIS__URL` → `["redis", "url"]`; a component's name reads `_` as `-`.
fn env_path(name: &str) -> Vec<String> {
    let mut path: Vec<String> = name.split("__").map(str::to_ascii_lowercase).collect();
    if path.len() > 1 && path[0] == "components" {
        path[1] = path[1].replace('_', "-");
    }
    path
}

/// The value of a variable for the key at `path`: the first reading that
/// the key accepts, or the error of the first reading.
fn env_value(path: &[String], raw: &str) -> Result<Value> {
    if path.iter().any(String::is_empty) {
        bail!("not a key path (sections are separated by `__`)");
    }
    let mut readings = Vec::new();
    if !raw.contains(['\n', '\r'])
        && let Ok(t) = toml::from_str::<Table>(&format!("v = {raw}"))
        && let Some(v) = t.get("v")
    {
        readings.push(v.clone());
    }
    readings.push(Value::String(raw.to_string()));
    let items = raw.split(',').map(|s| Value::String(s.trim().to_string()));
    readings.push(Value::Array(items.collect()));
    let mut first = None;
    for value in readings {
        let mut table = Table::new();
        insert_at(&mut table, path, value.clone());
        match check(&table) {
            Ok(()) => return Ok(value),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.expect("there is always a reading"))
}

/// For a variable that names no key: the same with its first `_` after the
/// section made `__`, if that names one (`WARMLANE_REDIS_URL` →
/// `WARMLANE_REDIS__URL`).
fn suggestion(var: &str) -> Option<String> {
    let name = &var[PREFIX.len()..];
    if name.contains("__") {
        return None;
    }
    (1..name.len())
        .filter(|&i| name.as_bytes()[i] == b'_')
        .map(|i| format!("{}__{}", &name[..i], &name[i + 1..]))
        .find(|candidate| {
            let mut table = Table::new();
            // Any value: only whether the key exists matters here.
            insert_at(&mut table, &env_path(candidate), Value::Integer(0));
            match check(&table) {
                Ok(()) => true,
                Err(e) => !e.to_string().contains("unknown field"),
            }
        })
        .map(|candidate| format!("{PREFIX}{candidate}"))
}

/// Puts `value` at `path` in `table`, making (or replacing with) tables
/// on the way.
fn insert_at(table: &mut Table, path: &[String], value: Value) {
    let (last, sections) = path.split_last().expect("a key path is never empty");
    let mut at = table;
    for s in sections {
        let entry = at
            .entry(s.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        at = entry.as_table_mut().expect("made a table above");
    }
    at.insert(last.clone(), value);
}

/// The dotted paths of `table`'s values (an array is one value).
fn collect_leaves(table: &Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Table(t) => collect_leaves(t, &path, out),
            _ => out.push(path),
        }
    }
}

/// `config` as TOML, each value followed by where it came from.
pub(crate) fn show(config: &Config, layers: &Layers) -> Result<String> {
    let table = Table::try_from(config).context("cannot write the configuration as TOML")?;
    let mut out = String::new();
    write_table(&table, "", layers, &mut out);
    Ok(out)
}

fn write_table(table: &Table, prefix: &str, layers: &Layers, out: &mut String) {
    let path_of = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    for (k, v) in table.iter().filter(|(_, v)| !v.is_table()) {
        let path = path_of(k);
        out.push_str(&format!("{} = {v} # {}\n", key(k), layers.source(&path)));
    }
    for (k, v) in table.iter() {
        if let Value::Table(t) = v {
            let path = path_of(k);
            let header: Vec<String> = path.split('.').map(key).collect();
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{}]\n", header.join(".")));
            write_table(t, &path, layers, out);
        }
    }
}

/// A key as TOML writes it: bare where it can be, quoted otherwise.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn variables_reach_every_kind_of_key() {
        let layers = Layers::new(None)
            .unwrap()
            .env(vars(&[
                ("WARMLANE_REDIS__URL", "redis://r:6379"),
                ("WARMLANE_LANES__HEAVY_FROM_PAGES", "40"),
                ("WARMLANE_SERVER__LANES", "heavy"),
                ("WARMLANE_SERVER__MCP_ALLOWED_HOSTS", "a,b"),
                ("WARMLANE_COMPONENTS__PDF_PAGES__WARM", "3"),
                ("WARMLANE_ENGINE__COMPILE_AT_START", "false"),
                ("WARMLANE_LOG", "debug"),
                ("HOME", "/root"),
            ]))
            .unwrap();
        let c = layers.config().unwrap();
        assert_eq!(c.redis.url.as_deref(), Some("redis://r:6379"));
        assert_eq!(c.lanes.heavy_from_pages, 40);
        assert_eq!(c.server.lanes, vec![warmlane_host::Lane::Heavy]);
        assert_eq!(c.server.mcp_allowed_hosts, ["a", "b"]);
        assert_eq!(c.limits_for("pdf-pages").warm, 3);
        assert!(!c.engine.compile_at_start);
        assert_eq!(
            layers.source("redis.url"),
            Source::Env("WARMLANE_REDIS__URL".into())
        );
        assert_eq!(layers.source("server.listen"), Source::Default);
    }

    #[test]
    fn later_layers_win_and_say_so() {
        let file = PathBuf::from("w.toml");
        let text = "[redis]\nurl = \"redis://file\"\nkey_prefix = \"f\"\n";
        let layers = Layers::new(Some((&file, text)))
            .unwrap()
            .env(vars(&[("WARMLANE_REDIS__URL", "redis://env")]))
            .unwrap();
        assert_eq!(
            layers.config().unwrap().redis.url.as_deref(),
            Some("redis://env")
        );
        assert_eq!(
            layers.source("redis.key_prefix"),
            Source::File(file.clone())
        );
        let layers = layers.flag("--redis", "redis.url", Value::String("redis://flag".into()));
        let c = layers.config().unwrap();
        assert_eq!(c.redis.url.as_deref(), Some("redis://flag"));
        let shown = show(&c, &layers).unwrap();
        assert!(
            shown.contains("url = \"redis://flag\" # --redis"),
            "{shown}"
        );
        assert!(
            shown.contains(&format!("key_prefix = \"f\" # {}", file.display())),
            "{shown}"
        );
        assert!(
            shown.contains("listen = \"127.0.0.1:8080\" # default"),
            "{shown}"
        );
        // What `config show` prints reads back as the same configuration.
        let back: Config = toml::from_str(&shown).unwrap();
        assert_eq!(back.redis.key_prefix, "f");
    }

    #[test]
    fn a_variable_that_names_no_key_or_a_wrong_value_is_named() {
        let e = Layers::new(None)
            .unwrap()
            .env(vars(&[("WARMLANE_REDIS_URL", "redis://r")]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("WARMLANE_REDIS_URL"), "{e}");
        assert!(e.contains("did you mean WARMLANE_REDIS__URL?"), "{e}");
        let e = format!(
            "{:#}",
            Layers::new(None)
                .unwrap()
                .env(vars(&[("WARMLANE_LANES__HEAVY_FROM_PAGES", "many")]))
                .err()
                .unwrap()
        );
        assert!(e.contains("WARMLANE_LANES__HEAVY_FROM_PAGES"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
        let e = Layers::new(None)
            .unwrap()
            .env(vars(&[("WARMLANE_SERVER__NOPE", "1")]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("WARMLANE_SERVER__NOPE") && e.contains("nope"),
            "{e}"
        );
    }
}
