//! The `warmlane` command: run documents through warm WebAssembly workers,
//! call agent tools, and look at the budgets they draw from.

mod args;
mod commands;

use std::process::ExitCode;

const USAGE: &str = "\
warmlane: run AI-service workers (PDF parsing, chunking, agent tools) as pre-warmed WebAssembly components

Usage:
  warmlane run [OPTIONS] FILE.pdf...     parse and chunk PDFs; NDJSON on stdout
  warmlane tools list [--config FILE]    list the tools and their input schemas
  warmlane tools call NAME JSON [--session ID] [--config FILE]
                                         call a tool once
  warmlane serve [--listen ADDR] [--config FILE] [--redis URL] [--role all|api|worker]
                 [--lanes light,heavy]   serve HTTP (documents, tools, sessions, MCP at /mcp,
                                         /metrics, /livez, /readyz) until SIGTERM; with Redis,
                                         as one replica of several (see the README)
  warmlane jobs list|show ID|chunks ID|cancel ID [--config FILE] [--redis URL]
                                         the document jobs replicas share through Redis
  warmlane mcp [--config FILE] [--redis URL]
                                         serve the tools to an MCP client on stdin/stdout
  warmlane budget show [--config FILE] [--redis URL]
                                         each budget's size and tokens now
  warmlane budget draw NAME [--cost N] [--lane light|heavy] [--count K] [--for SECONDS]
                                         draw by hand; one JSON line per grant
  warmlane help                          this text

Options for `run`:
  --config FILE        TOML configuration (every value has a default)
  --password PASSWORD  password for encrypted PDFs (the empty password is always tried)
  --batch-pages N      pages per batch handed to the parser (default 16)
  --workers N          batches parsed at once across the lanes (default: one per core)
  --chunk-size N       largest chunk (default 512)
  --overlap N          how much each chunk repeats of the previous (default 64)
  --unit UNIT          what sizes count: tokens (cl100k) or characters (default tokens)
  --pages              also write one record per page with its text (doc, page, text)
  --quiet              no progress bar and no summary line

Logs go to stderr; set WARMLANE_LOG=debug|info|warn|error (default warn), and
WARMLANE_LOG_FORMAT=json for one JSON object per line.
";

fn main() -> ExitCode {
    init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => commands::run::main(&args[1..]),
        Some("tools") => commands::tools::main(&args[1..]),
        Some("budget") => commands::budget::main(&args[1..]),
        Some("serve") => commands::serve::main(&args[1..]),
        Some("jobs") => commands::jobs::main(&args[1..]),
        Some("mcp") => commands::mcp::main(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some("--version" | "-V") => {
            println!("warmlane {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(anyhow::anyhow!(
            "unknown command `{other}`; run `warmlane help`"
        )),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warmlane: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let level = match std::env::var("WARMLANE_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "info" => tracing::Level::INFO,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::WARN,
    };
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    if std::env::var("WARMLANE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        logs.json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        logs.init();
    }
}
