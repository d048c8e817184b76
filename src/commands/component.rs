//! `warmlane component`: create a component project, check a component, and
//! try one straight from its file, with no configuration or plugin
//! directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use warmlane_host::{Host, WorldKind};

use crate::cli::ConfigArgs;

/// `warmlane component`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a component project that builds as it is: the source, the
    /// WIT, build.sh, and test.sh (which builds it and tries it with this
    /// binary).
    New {
        /// The component's name (and its tool's): lowercase letters, digits
        /// and `-`, starting with a letter.
        name: String,
        /// The language.
        #[arg(long, value_enum)]
        lang: Lang,
        /// The world it implements.
        #[arg(long, value_enum, default_value = "tool")]
        world: World,
        /// Where to write it (default: ./NAME); must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Say which world a component implements and, when it does not fit,
    /// exactly how; what it imports and which of that the host denies; its
    /// size and compile time. Exits 1 when a component does not load.
    Check {
        /// The components.
        #[arg(value_name = "FILE.wasm", required = true)]
        files: Vec<PathBuf>,
    },
    /// Call a tool component straight from its file; its output on stdout.
    Call {
        /// The tool component.
        #[arg(value_name = "FILE.wasm")]
        file: PathBuf,
        /// Its input, as JSON text.
        input: String,
        /// Continue this session (else the call gets a session of its own).
        #[arg(long, value_name = "ID")]
        session: Option<String>,
    },
}

/// A language `component new` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Lang {
    /// Rust, built by cargo with wit-bindgen.
    Rust,
    /// Python, built by componentize-py.
    Python,
    /// JavaScript, built by jco and componentize-js.
    Js,
}

/// A world `component new` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum World {
    /// An agent tool (`tool-component`).
    Tool,
    /// A PDF page parser (`page-parser-component`).
    PageParser,
    /// A chunker (`chunker-component`).
    Chunker,
}

impl World {
    fn kind(self) -> WorldKind {
        match self {
            World::Tool => WorldKind::Tool,
            World::PageParser => WorldKind::PageParser,
            World::Chunker => WorldKind::Chunker,
        }
    }

    /// The name its templates carry.
    fn template(self) -> &'static str {
        match self {
            World::Tool => "tool",
            World::PageParser => "page-parser",
            World::Chunker => "chunker",
        }
    }
}

pub(crate) fn main(args: Args) -> Result<ExitCode> {
    match args.command {
        Command::New {
            name,
            lang,
            world,
            dir,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            new(&name, lang, world, &dir)?;
            println!(
                "wrote {} ({:?}, {}): ./build.sh builds {name}.wasm, ./test.sh builds and tries it",
                dir.display(),
                lang,
                world.kind()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { files } => {
            let mut host = Host::new(args.config.load()?)?;
            let mut all = true;
            for file in &files {
                let check = host.check_component(file)?;
                all &= check.loads();
                println!("{check}");
            }
            Ok(if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Call {
            file,
            input,
            session,
        } => {
            let mut config = args.config.load()?;
            config.plugins.files.push(file.clone());
            let host = Host::new(config)?;
            let component = super::component_name(&file);
            let Some(tool) = host.tools().into_iter().find(|t| t.component == component) else {
                let Some(world) = host
                    .components()
                    .iter()
                    .find(|c| c.name == component)
                    .map(|c| c.world)
                else {
                    // Only with plugins.on_error = "skip" in --config.
                    let why = host.skipped_plugins().iter().find(|p| p.name == component);
                    bail!(
                        "{} was not loaded: {}",
                        file.display(),
                        why.map_or("another component has its name".into(), |p| p
                            .reason
                            .clone())
                    );
                };
                let flag = if world == WorldKind::Chunker {
                    "chunker"
                } else {
                    "parser"
                };
                bail!(
                    "{} implements world `{world}`, not a tool: try it on a PDF with `warmlane run --{flag} {} FILE.pdf`",
                    file.display(),
                    file.display()
                );
            };
            super::tools::call(&host, &tool.name, &input, session.as_deref())
        }
    }
}

/// The WIT every project carries: the host's own, and the WASI packages
/// its `wasi:http` import needs.
const WIT: &[(&str, &str)] = &[
    ("wit/worker.wit", include_str!("../../wit/worker.wit")),
    (
        "wit/deps/http/package.wit",
        include_str!("../../wit/deps/http/package.wit"),
    ),
    (
        "wit/deps/io/package.wit",
        include_str!("../../wit/deps/io/package.wit"),
    ),
    (
        "wit/deps/clocks/package.wit",
        include_str!("../../wit/deps/clocks/package.wit"),
    ),
    (
        "wit/deps/cli/package.wit",
        include_str!("../../wit/deps/cli/package.wit"),
    ),
    (
        "wit/deps/random/package.wit",
        include_str!("../../wit/deps/random/package.wit"),
    ),
    (
        "wit/deps/filesystem/package.wit",
        include_str!("../../wit/deps/filesystem/package.wit"),
    ),
    (
        "wit/deps/sockets/package.wit",
        include_str!("../../wit/deps/sockets/package.wit"),
    ),
];

/// `(language, world or "", file in the project, its template)`; a template
/// whose world is "" is every world's.
const TEMPLATES: &[(&str, &str, &str, &str)] = &[
    (
        "rust",
        "",
        "Cargo.toml",
        include_str!("component/rust/Cargo.toml"),
    ),
    (
        "rust",
        "",
        "build.sh",
        include_str!("component/rust/build.sh"),
    ),
    (
        "rust",
        "tool",
        "src/lib.rs",
        include_str!("component/rust/tool.rs"),
    ),
    (
        "rust",
        "chunker",
        "src/lib.rs",
        include_str!("component/rust/chunker.rs"),
    ),
    (
        "rust",
        "page-parser",
        "src/lib.rs",
        include_str!("component/rust/page-parser.rs"),
    ),
    (
        "python",
        "",
        "build.sh",
        include_str!("component/python/build.sh"),
    ),
    (
        "python",
        "tool",
        "app.py",
        include_str!("component/python/tool.py"),
    ),
    (
        "python",
        "chunker",
        "app.py",
        include_str!("component/python/chunker.py"),
    ),
    (
        "python",
        "page-parser",
        "app.py",
        include_str!("component/python/page-parser.py"),
    ),
    (
        "js",
        "",
        "package.json",
        include_str!("component/js/package.json"),
    ),
    ("js", "", "build.sh", include_str!("component/js/build.sh")),
    (
        "js",
        "tool",
        "__NAME__.js",
        include_str!("component/js/tool.js"),
    ),
    (
        "js",
        "chunker",
        "__NAME__.js",
        include_str!("component/js/chunker.js"),
    ),
    (
        "js",
        "page-parser",
        "__NAME__.js",
        include_str!("component/js/page-parser.js"),
    ),
    (
        "",
        "tool",
        "test.sh",
        include_str!("component/common/test-tool.sh"),
    ),
    (
        "",
        "chunker",
        "test.sh",
        include_str!("component/common/test-chunker.sh"),
    ),
    (
        "",
        "page-parser",
        "test.sh",
        include_str!("component/common/test-page-parser.sh"),
    ),
];

/// Writes the project for `name` in `lang` and `world` into `dir`.
fn new(name: &str, lang: Lang, world: World, dir: &Path) -> Result<()> {
    if !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || name.len() > 64
    {
        bail!(
            "component name `{name}`: use up to 64 lowercase letters, digits and `-`, starting with a letter"
        );
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty; choose another --dir",
            dir.display()
        );
    }
    let language = match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
    };
    let world_name = world.kind().world();
    let fill = |text: &str| {
        text.replace("__NAME__", name)
            .replace("__CRATE__", &name.replace('-', "_"))
            .replace("__WORLD__", world_name)
    };
    let mut files: Vec<(String, String)> = TEMPLATES
        .iter()
        .filter(|(l, w, _, _)| {
            (l.is_empty() || *l == language) && (w.is_empty() || *w == world.template())
        })
        .map(|(_, _, path, text)| (fill(path), fill(text)))
        .collect();
    if let (Lang::Rust, false) = (lang, matches!(world, World::Tool)) {
        // Only the tool reads JSON.
        for (path, text) in &mut files {
            if path == "Cargo.toml" {
                *text = text.replace("serde_json = \"1\"\n", "");
            }
        }
    }
    files.extend(
        WIT.iter()
            .map(|(path, text)| (path.to_string(), text.to_string())),
    );
    files.push((".gitignore".into(), gitignore(lang).into()));
    let mut binary = Vec::new();
    if !matches!(world, World::Tool) {
        binary.push(("sample.pdf", sample_pdf()));
    }
    for (path, text) in &files {
        write(dir, path, text.as_bytes())?;
    }
    for (path, bytes) in &binary {
        write(dir, path, bytes)?;
    }
    for script in ["build.sh", "test.sh"] {
        executable(&dir.join(script))?;
    }
    Ok(())
}

fn gitignore(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "/target/\n*.wasm\n",
        Lang::Python => "__pycache__/\n*.wasm\n",
        Lang::Js => "node_modules/\n*.wasm\n",
    }
}

fn write(dir: &Path, path: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(unix)]
fn executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn executable(_: &Path) -> Result<()> {
    Ok(())
}

/// A two-page PDF for a new parser or chunker to read: uncompressed, one
/// paragraph per page.
fn sample_pdf() -> Vec<u8> {
    let pages = [
        "Hello from warmlane. This sample has two pages, so that a new component has something to read.",
        "The second page. A page parser answers for every page; a chunker cuts their texts into chunks.",
    ];
    let mut objects: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            (0..pages.len())
                .map(|i| format!("{} 0 R", 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(" "),
            pages.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
    ];
    for (i, text) in pages.iter().enumerate() {
        let content = format!("BT /F1 11 Tf 72 720 Td ({text}) Tj ET");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    let mut pdf = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}
