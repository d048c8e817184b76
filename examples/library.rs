//! Use warmlane as a library: start a host, stream a PDF's chunks, call a tool.
//!
//! Run: `cargo run --release --example library -- tests/data/en-lppl.pdf`

use std::time::Duration;

use anyhow::{Context, Result};
use warmlane_host::{Config, Event, Host, PdfDocument, SessionId};

fn main() -> Result<()> {
    let path = std::env::args().nth(1).context("usage: library FILE.pdf")?;

    // 1. Start a host on the embedded defaults: every built-in component is
    //    compiled (or loaded from the compile cache) and its pool fills in
    //    the background. Wait for it, as a server's readiness probe would.
    let host = Host::new(Config::default())?;
    host.wait_warm(Duration::from_secs(30));

    // 2. Open the document. This reads its cross-reference table, not the
    //    whole file's objects; errors say what is wrong with it.
    let doc = PdfDocument::open(std::fs::read(&path)?, None)?;
    println!("{path}: {} pages", doc.page_count());

    // 3. Process it: the document goes to the light or heavy lane by its
    //    size, its batches are parsed in parallel by warm instances, and
    //    events arrive in page order as soon as they are ready.
    let options = host.document_options();
    let summary = host.process(doc, &options, "example", &mut |event| match event {
        Event::Chunk(c) if c.index < 3 => {
            let preview: String = c.text.chars().take(60).collect();
            println!(
                "chunk {} (pages {}-{}): {preview:?}…",
                c.index, c.first_page, c.last_page
            );
        }
        Event::PageError { page, error } => eprintln!("page {page}: {error}"),
        _ => {}
    })?;
    println!("{} chunks in {:.2?}", summary.chunks, summary.elapsed);

    // 4. Call a tool within a session: each call runs in a fresh instance,
    //    and the notes live in the host's session store.
    let session = SessionId::parse("example").map_err(anyhow::Error::msg)?;
    host.open_session(&session)?;
    host.call_tool(
        "notes",
        r#"{"action":"add","text":"read the licence"}"#,
        Some(&session),
    )?;
    println!(
        "notes: {}",
        host.call_tool("notes", r#"{"action":"list"}"#, Some(&session))?
    );

    // 5. What the pools did.
    for (name, stats) in host.pool_stats() {
        println!(
            "{name}: {} warm hits, {} misses, p50 acquire ≤ {:?}",
            stats.hits,
            stats.misses,
            stats.acquire.quantile(0.5)
        );
    }
    Ok(())
}
