//! What a component is, for `warmlane component check`: the world it
//! implements and, where it does not fit, exactly which function differs and
//! how (names and types); what it imports and what the host's policy makes
//! of each import; its size and its compile time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};

use crate::compile::{self, Compiled, Source};
use crate::components::{self, WorldKind};
use crate::tools::ToolInfo;

/// What the host makes of one import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Provided as it is.
    Provided,
    /// Provided, but the host's policy denies what it is for; says how.
    Denied(&'static str),
    /// Not provided: a component that imports it does not load; says what
    /// to do.
    Missing(&'static str),
}

/// One import and the host's verdict on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The import's name, such as `wasi:cli/stderr@0.2.6`.
    pub name: String,
    /// What the host makes of it.
    pub verdict: Verdict,
}

/// A component's check: everything `warmlane component check` says.
#[derive(Debug, Clone)]
pub struct Check {
    /// The file checked.
    pub file: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// How long compiling it to native code took, if it compiled.
    pub compile: Option<Duration>,
    /// The world it implements, if it exports one warmlane interface.
    pub world: Option<WorldKind>,
    /// The `warmlane:worker` version it was built against, if it was.
    pub version: Option<String>,
    /// Its imports, in its order.
    pub imports: Vec<Import>,
    /// The names of its exports.
    pub exports: Vec<String>,
    /// Why it does not load, one finding each; empty when it does.
    pub problems: Vec<String>,
    /// What it tells models about itself, when it is a tool that loads.
    pub tool: Option<ToolInfo>,
}

impl Check {
    /// Whether the host loads it as it is.
    pub fn loads(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Everything a check can tell without loading `source` (read from
/// `path`): what its first bytes are, whether it compiles and how long that
/// takes, its world and version, how its exports differ from those of
/// `reference(world)` (a component the host knows fits), and its imports;
/// with the compiled component, when it compiled.
pub(crate) fn inspect<'r>(
    engine: &Engine,
    path: &Path,
    source: &Source,
    reference: impl FnOnce(WorldKind) -> Option<&'r Component>,
) -> (Check, Option<Compiled>) {
    let mut check = Check {
        file: path.to_path_buf(),
        size: source.wasm.len() as u64,
        compile: None,
        world: None,
        version: None,
        imports: Vec::new(),
        exports: Vec::new(),
        problems: Vec::new(),
        tool: None,
    };
    if let Some(why) = not_a_component(&source.wasm) {
        check.problems.push(why.to_string());
        return (check, None);
    }
    let compiled = match compile::component(engine, None, source, true) {
        Ok(compiled) => compiled,
        Err(e) => {
            check.problems.push(format!("{e:#}"));
            return (check, None);
        }
    };
    check.compile = Some(compiled.took);
    let ty = compiled.component.component_type();
    check.exports = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    check.imports = ty
        .imports(engine)
        .map(|(name, _)| Import {
            name: name.to_string(),
            verdict: verdict(name),
        })
        .collect();
    match components::classify(engine, &compiled.component) {
        Ok(kind) => {
            check.world = Some(kind);
            check.version = check
                .exports
                .iter()
                .find(|e| kind.exported_as(e))
                .and_then(|e| e.split_once('@'))
                .map(|(_, v)| v.to_string());
            if let Some(reference) = reference(kind) {
                check.problems.extend(export_differences(
                    engine,
                    kind,
                    &compiled.component,
                    reference,
                ));
            }
        }
        Err(e) => check
            .problems
            .push(format!("it implements no warmlane world: {e:#}")),
    }
    for import in &check.imports {
        if let Verdict::Missing(what) = import.verdict {
            check
                .problems
                .push(format!("it imports `{}`: {what}", import.name));
        }
    }
    (check, Some(compiled))
}

/// What the file's first bytes say it is, when it is not a component.
fn not_a_component(bytes: &[u8]) -> Option<&'static str> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Some(
            "it is a core WebAssembly module, not a component: build it for wasm32-wasip2 (Rust), with componentize-py or jco (Python, JavaScript), or wrap it with `wasm-tools component new`",
        ),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => None,
        _ => Some("it is not WebAssembly: a component starts with the bytes \\0asm"),
    }
}

/// What the host makes of an import named `name` (the linker has the last
/// word: a component whose import it cannot satisfy is refused with its
/// reason, whatever this says).
fn verdict(name: &str) -> Verdict {
    let (interface, version) = name.split_once('@').unwrap_or((name, ""));
    let wasi = version.starts_with("0.2.");
    match interface {
        "warmlane:worker/session" | "warmlane:worker/log" if version.starts_with("0.1.") => {
            Verdict::Provided
        }
        _ if interface.starts_with("wasi:sockets/") && wasi => {
            Verdict::Denied("no network: every socket, connection and name lookup is refused")
        }
        _ if interface.starts_with("wasi:filesystem/") && wasi => {
            Verdict::Denied("no files: no directory is opened to components")
        }
        "wasi:cli/environment" if wasi => {
            Verdict::Denied("empty: no environment variables and no arguments")
        }
        "wasi:cli/stdin" if wasi => Verdict::Denied("empty"),
        "wasi:cli/stdout" if wasi => Verdict::Denied("discarded"),
        "wasi:cli/stderr" if wasi => {
            Verdict::Denied("kept (its first 4 KiB) for the message of a panic or exception")
        }
        "wasi:http/types" | "wasi:http/outgoing-handler" if wasi => Verdict::Denied(
            "requests go out only to the component's upstreams ([components.NAME] upstreams), with the host's headers and limits",
        ),
        "wasi:http/incoming-handler" if wasi => Verdict::Missing(
            "components are called through their world's exports, not as HTTP handlers; jco exports it unless told `--disable fetch-event`",
        ),
        _ if wasi && WASI.contains(&interface) => Verdict::Provided,
        _ => Verdict::Missing("the host does not provide it"),
    }
}

/// The WASI 0.2 interfaces the host links (through `wasmtime-wasi`), besides
/// sockets and the filesystem.
const WASI: [&str; 14] = [
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/exit",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// How `component`'s export of `kind`'s interface differs from
/// `reference`'s (a component the host knows implements it), one finding
/// per function: missing, of another type, or not an interface at all.
pub(crate) fn export_differences(
    engine: &Engine,
    kind: WorldKind,
    component: &Component,
    reference: &Component,
) -> Vec<String> {
    // The export's name, and its functions if it is an instance.
    type Functions = Vec<(String, String)>;
    let functions = |c: &Component| -> Option<(String, Option<Functions>)> {
        let ty = c.component_type();
        let (name, export) = ty
            .exports(engine)
            .find(|(name, _)| kind.exported_as(name))?;
        let functions = match export.ty {
            ComponentItem::ComponentInstance(instance) => Some(
                instance
                    .exports(engine)
                    .filter_map(|(name, e)| match e.ty {
                        ComponentItem::ComponentFunc(f) => Some((name.to_string(), func(&f))),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        };
        Some((name.to_string(), functions))
    };
    let (Some((_, Some(expected))), Some((interface, found))) =
        (functions(reference), functions(component))
    else {
        return Vec::new();
    };
    let Some(found) = found else {
        return vec![format!(
            "it exports `{interface}` as something other than an interface (an instance of functions)"
        )];
    };
    let mut problems = Vec::new();
    for (name, want) in &expected {
        match found.iter().find(|(n, _)| n == name) {
            None => problems.push(format!(
                "`{interface}` has no function `{name}`; the world's is `{name}: {want}`"
            )),
            Some((_, got)) if got != want => problems.push(format!(
                "`{interface}` function `{name}` is `{got}`; the world's is `{want}`"
            )),
            Some(_) => {}
        }
    }
    problems
}

/// A function type in WIT's notation.
pub(crate) fn func(f: &ComponentFunc) -> String {
    let params: Vec<String> = f
        .params()
        .map(|(name, ty)| format!("{name}: {}", wit(&ty)))
        .collect();
    let results: Vec<String> = f.results().map(|ty| wit(&ty)).collect();
    match results.as_slice() {
        [] => format!("func({})", params.join(", ")),
        _ => format!("func({}) -> {}", params.join(", "), results.join(", ")),
    }
}

/// A type in WIT's notation, named types spelled out (a component's types
/// carry no names).
fn wit(ty: &Type) -> String {
    let list = |items: Vec<String>| items.join(", ");
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", wit(&l.ty())),
        Type::FixedLengthList(l) => format!("list<{}, {}>", wit(&l.ty()), l.len()),
        Type::Map(m) => format!("map<{}, {}>", wit(&m.key()), wit(&m.value())),
        Type::Record(r) => format!(
            "record {{ {} }}",
            list(
                r.fields()
                    .map(|f| format!("{}: {}", f.name, wit(&f.ty)))
                    .collect()
            )
        ),
        Type::Tuple(t) => format!("tuple<{}>", list(t.types().map(|t| wit(&t)).collect())),
        Type::Variant(v) => format!(
            "variant {{ {} }}",
            list(
                v.cases()
                    .map(|c| match &c.ty {
                        Some(ty) => format!("{}({})", c.name, wit(ty)),
                        None => c.name.to_string(),
                    })
                    .collect()
            )
        ),
        Type::Enum(e) => format!("enum {{ {} }}", list(e.names().map(String::from).collect())),
        Type::Flags(f) => format!(
            "flags {{ {} }}",
            list(f.names().map(String::from).collect())
        ),
        Type::Option(o) => format!("option<{}>", wit(&o.ty())),
        Type::Result(r) => match (r.ok(), r.err()) {
            (Some(ok), Some(err)) => format!("result<{}, {}>", wit(&ok), wit(&err)),
            (None, Some(err)) => format!("result<_, {}>", wit(&err)),
            (Some(ok), None) => format!("result<{}>", wit(&ok)),
            (None, None) => "result".into(),
        },
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        Type::Future(f) => match f.ty() {
            Some(ty) => format!("future<{}>", wit(&ty)),
            None => "future".into(),
        },
        Type::Stream(s) => match s.ty() {
            Some(ty) => format!("stream<{}>", wit(&ty)),
            None => "stream".into(),
        },
        Type::ErrorContext => "error-context".into(),
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.file.display())?;
        writeln!(f, "  size:     {} bytes", self.size)?;
        match self.compile {
            Some(took) => writeln!(f, "  compile:  {:.0} ms", took.as_secs_f64() * 1e3)?,
            None => writeln!(f, "  compile:  did not compile")?,
        }
        match (self.world, &self.version) {
            (Some(world), Some(version)) => {
                writeln!(f, "  world:    {world} (warmlane:worker@{version})")?
            }
            (Some(world), None) => writeln!(f, "  world:    {world}")?,
            (None, _) => writeln!(f, "  world:    none")?,
        }
        if let Some(tool) = &self.tool {
            writeln!(f, "  tool:     {}: {}", tool.name, tool.description)?;
        }
        if !self.exports.is_empty() {
            writeln!(f, "  exports:")?;
            for e in &self.exports {
                writeln!(f, "    {e}")?;
            }
        }
        if !self.imports.is_empty() {
            writeln!(f, "  imports:")?;
            for i in &self.imports {
                match &i.verdict {
                    Verdict::Provided => writeln!(f, "    {}: provided", i.name)?,
                    Verdict::Denied(how) => {
                        writeln!(f, "    {}: denied by policy ({how})", i.name)?
                    }
                    Verdict::Missing(what) => writeln!(f, "    {}: MISSING ({what})", i.name)?,
                }
            }
        }
        if self.problems.is_empty() {
            write!(f, "  loads:    yes")
        } else {
            writeln!(f, "  loads:    no")?;
            let problems: Vec<String> = self.problems.iter().map(|p| format!("    {p}")).collect();
            write!(f, "{}", problems.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_get_the_policy_they_meet() {
        assert_eq!(verdict("warmlane:worker/session@0.1.0"), Verdict::Provided);
        assert_eq!(verdict("warmlane:worker/log@0.1.1"), Verdict::Provided);
        assert!(matches!(
            verdict("warmlane:worker/session@0.2.0"),
            Verdict::Missing(_)
        ));
        assert_eq!(verdict("wasi:io/streams@0.2.6"), Verdict::Provided);
        assert!(matches!(
            verdict("wasi:sockets/tcp@0.2.3"),
            Verdict::Denied(_)
        ));
        assert!(matches!(
            verdict("wasi:filesystem/preopens@0.2.0"),
            Verdict::Denied(_)
        ));
        assert!(matches!(
            verdict("wasi:http/outgoing-handler@0.2.3"),
            Verdict::Denied(_)
        ));
        assert!(matches!(verdict("acme:thing/x"), Verdict::Missing(_)));
    }

    #[test]
    fn what_is_not_a_component_is_named() {
        assert!(not_a_component(b"\0asm\x0d\0\x01\0rest").is_none());
        assert!(
            not_a_component(b"\0asm\x01\0\0\0")
                .unwrap()
                .contains("core")
        );
        assert!(
            not_a_component(b"%PDF-1.7")
                .unwrap()
                .contains("not WebAssembly")
        );
        assert!(not_a_component(b"").is_some());
    }
}
