//! The real `warmlane` binary, end to end.

use std::process::Command;

use crate::support;

/// Runs the binary with `args`: its exit code, stdout and stderr.
pub(crate) fn warmlane(args: &[&str]) -> (i32, String, String) {
    warmlane_env(args, &[])
}

fn records(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is JSON"))
        .collect()
}

#[test]
fn run_writes_ndjson_and_a_summary() {
    let pdf = support::data("en-lppl.pdf");
    let (code, stdout, stderr) = warmlane(&[
        "run",
        "--chunk-size",
        "200",
        "--overlap",
        "20",
        pdf.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let recs = records(&stdout);
    assert!(recs.len() > 10);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["chunk"], i);
        assert_eq!(r["doc"], pdf.to_str().unwrap());
        assert!(r["first_page"].as_u64().unwrap() >= 1 && r["last_page"].as_u64().unwrap() <= 8);
        assert!(r["text"].as_str().unwrap().len() > 10);
    }
    assert!(
        stderr.contains("8 pages") && stderr.contains("pages/s"),
        "{stderr}"
    );
}

#[test]
fn bad_files_get_one_line_each_and_the_rest_still_run() {
    let good = support::data("en-lppl.pdf");
    let (code, stdout, stderr) = warmlane(&[
        "run",
        "--quiet",
        support::data("not-a-pdf.pdf").to_str().unwrap(),
        support::data("encrypted-graph.pdf").to_str().unwrap(),
        support::data("does-not-exist.pdf").to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].contains("not-a-pdf.pdf") && lines[0].contains("not a PDF"),
        "{stderr}"
    );
    assert!(
        lines[1].contains("encrypted-graph.pdf") && lines[1].contains("--password"),
        "{stderr}"
    );
    assert!(
        lines[2].contains("does-not-exist.pdf") && lines[2].contains("cannot read"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    assert!(
        records(&stdout)
            .iter()
            .all(|r| r["doc"] == good.to_str().unwrap())
    );
    assert!(!stdout.is_empty());
}

#[test]
fn password_opens_the_encrypted_file() {
    let (code, stdout, stderr) = warmlane(&[
        "run",
        "--password",
        "user",
        support::data("encrypted-graph.pdf").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    // Its one page is a chart drawn as an image: a record says there is no
    // text layer, for a pipeline to send the page to OCR.
    let recs = records(&stdout);
    assert_eq!(recs.len(), 1, "{stdout}");
    assert_eq!(recs[0]["page"], 1);
    assert!(
        recs[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("no text layer: the page shows 1 image and no text"),
        "{stdout}"
    );
    assert!(stderr.contains("1 page errors"), "{stderr}");
}

#[test]
fn pages_option_writes_page_texts() {
    let (code, stdout, _) = warmlane(&[
        "run",
        "--quiet",
        "--pages",
        "--unit",
        "characters",
        support::data("zh-tlmgr-intro.pdf").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let pages: Vec<serde_json::Value> = records(&stdout)
        .into_iter()
        .filter(|r| r.get("page").is_some())
        .collect();
    assert_eq!(pages.len(), 20);
    assert!(pages[0]["text"].as_str().unwrap().contains("tlmgr"));
}

#[test]
fn bad_options_are_named() {
    let (code, _, stderr) = warmlane(&["run", "--chunk-size", "ten", "x.pdf"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--chunk-size") && stderr.contains("ten"),
        "{stderr}"
    );
    let (code, _, stderr) = warmlane(&["run", "--overlap", "600", "x.pdf"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("chunk_overlap"), "{stderr}");
    let (code, _, stderr) = warmlane(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("frobnicate"), "{stderr}");
}

#[test]
fn config_file_is_read_and_checked() {
    let dir = support::scratch("cli-config");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[pipeline]\nchunk_size = 100\nchunk_overlap = 0\nchunk_unit = \"characters\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = warmlane(&[
        "run",
        "--quiet",
        "--config",
        good.to_str().unwrap(),
        support::data("en-lppl.pdf").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        records(&stdout)
            .iter()
            .all(|r| r["text"].as_str().unwrap().chars().count() <= 100)
    );
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[pipeline]\nbatch_size = 3\n").unwrap();
    let (code, _, stderr) = warmlane(&["run", "--config", bad.to_str().unwrap(), "x.pdf"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("batch_size") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}

/// A configuration read from a pipe is read once and used: the process
/// loads it twice (for telemetry, then for the command), and a second read
/// of a pipe finds nothing, which once meant running on the defaults.
#[test]
fn a_config_from_a_pipe_is_used() {
    use std::io::Write;
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["run", "--quiet", "--config", "/dev/stdin"])
        .arg(support::data("en-lppl.pdf"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run warmlane");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"[pipeline]\nchunk_size = 100\nchunk_overlap = 0\nchunk_unit = \"characters\"\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let records = records(&String::from_utf8(out.stdout).unwrap());
    assert!(records.len() > 10, "{} chunks", records.len());
    for r in &records {
        let n = r["text"].as_str().unwrap().chars().count();
        assert!(
            n <= 100,
            "a chunk of {n} characters: the piped config was not used"
        );
    }
}

#[test]
fn tools_list_and_call() {
    let (code, stdout, _) = warmlane(&["tools", "list"]);
    assert_eq!(code, 0);
    let names: Vec<String> = records(&stdout)
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["notes", "text-stats"]);
    let (code, stdout, stderr) =
        warmlane(&["tools", "call", "notes", r#"{"action":"add","text":"hi"}"#]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), r#"{"added":1,"notes":1}"#);
    let (code, _, stderr) = warmlane(&["tools", "call", "text-stats", "{oops"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not JSON"), "{stderr}");
}

#[test]
fn a_session_in_redis_is_continued_by_another_process() {
    let server = crate::redis_server::RedisServer::start();
    let dir = support::scratch("cli-redis-session");
    let config = dir.join("warmlane.toml");
    std::fs::write(
        &config,
        format!(
            "[redis]\nurl = \"{}\"\n[components.notes]\nwarm = 1\n",
            server.url()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let call = |input: &str| {
        warmlane(&[
            "tools",
            "call",
            "notes",
            input,
            "--session",
            "shared-1",
            "--config",
            config,
        ])
    };
    let (code, _, stderr) = call(r#"{"action":"add","text":"left by the first process"}"#);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = call(r#"{"action":"list"}"#);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), r#"{"notes":["left by the first process"]}"#);
    // Redis down: the call fails with a message that says so.
    drop(server);
    let (code, _, stderr) = call(r#"{"action":"list"}"#);
    assert_ne!(code, 0);
    assert!(stderr.contains("unavailable"), "{stderr}");
}

#[test]
fn config_check_prints_the_configuration_in_effect() {
    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/image/warmlane.toml");
    let (code, stdout, stderr) = warmlane(&["config", "check", image]);
    assert_eq!(code, 0, "{stderr}");
    let effective: toml::Value = toml::from_str(&stdout).unwrap();
    assert_eq!(effective["server"]["listen"].as_str(), Some("0.0.0.0:8080"));
    // Defaults the file does not name are printed too.
    assert_eq!(effective["engine"]["tick_ms"].as_integer(), Some(5));
    assert_eq!(effective["pipeline"]["parser"].as_str(), Some("pdf-pages"));

    let dir = support::scratch("cli-config-check");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[redis]\nurl = \"redis://:secret@r:6379\"\ntimeout = 5\n",
    )
    .unwrap();
    let (code, _, stderr) = warmlane(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("timeout") && stderr.contains("bad.toml"),
        "{stderr}"
    );
    let good = dir.join("good.toml");
    std::fs::write(&good, "[redis]\nurl = \"redis://:secret@r:6379\"\n").unwrap();
    let (code, stdout, _) = warmlane(&["config", "check", good.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("redis://:***@r:6379") && !stdout.contains("secret"),
        "{stdout}"
    );
}

#[test]
fn every_command_answers_help() {
    for command in [
        &["--help"][..],
        &["run", "--help"],
        &["tools", "--help"],
        &["tools", "call", "--help"],
        &["serve", "--help"],
        &["jobs", "show", "--help"],
        &["mcp", "--help"],
        &["budget", "draw", "--help"],
        &["compile", "--help"],
        &["config", "check", "--help"],
        &["config", "show", "--help"],
        &["completions", "--help"],
    ] {
        let (code, stdout, stderr) = warmlane(command);
        assert_eq!(code, 0, "{command:?}: {stderr}");
        assert!(stdout.contains("Usage: warmlane"), "{command:?}: {stdout}");
    }
    let (code, _, stderr) = warmlane(&["serv"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("similar subcommand exists: 'serve'"),
        "{stderr}"
    );
    let (code, stdout, _) = warmlane(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("_warmlane()"));
}

/// Runs the binary with `args` and the environment variables `env` added.
fn warmlane_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run warmlane");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn environment_variables_configure_every_command_and_config_show_says_from_where() {
    let dir = support::scratch("cli-config-show");
    let file = dir.join("w.toml");
    std::fs::write(
        &file,
        "[lanes]\nheavy_from_pages = 7\n[redis]\nkey_prefix = \"file\"\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let (code, stdout, stderr) = warmlane_env(
        &[
            "config",
            "show",
            "--config",
            file,
            "--redis",
            "redis://:pw@flag:6379",
        ],
        &[
            ("WARMLANE_REDIS__KEY_PREFIX", "env"),
            ("WARMLANE_COMPONENTS__PDF_PAGES__WARM", "3"),
            ("WARMLANE_SERVER__LANES", "heavy"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    for line in [
        &format!("heavy_from_pages = 7 # {file}"),
        "key_prefix = \"env\" # $WARMLANE_REDIS__KEY_PREFIX",
        "url = \"redis://:***@flag:6379\" # --redis",
        "lanes = [\"heavy\"] # $WARMLANE_SERVER__LANES",
        "warm = 3 # $WARMLANE_COMPONENTS__PDF_PAGES__WARM",
        "listen = \"127.0.0.1:8080\" # default",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "no `{line}` in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("pw@"), "{stdout}");
    let shown: toml::Value = toml::from_str(&stdout).unwrap();
    assert_eq!(
        shown["components"]["pdf-pages"]["warm"].as_integer(),
        Some(3)
    );

    // The environment reaches the commands themselves: `run` on a config
    // whose chunks are tiny only through a variable.
    let pdf = support::data("en-lppl.pdf");
    let pdf = pdf.to_str().unwrap();
    let (code, plain, _) = warmlane_env(&["run", "--quiet", pdf], &[]);
    assert_eq!(code, 0);
    let (code, small, stderr) = warmlane_env(
        &["run", "--quiet", pdf],
        &[("WARMLANE_PIPELINE__CHUNK_SIZE", "128")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        small.lines().count() > plain.lines().count(),
        "{} chunks of 128 tokens against {} of 512",
        small.lines().count(),
        plain.lines().count()
    );

    // A variable that names no key, or holds the wrong type, is refused by
    // name; so is a wrong key in the file, by the file's name.
    let (code, _, stderr) = warmlane_env(&["run", pdf], &[("WARMLANE_REDIS_URL", "redis://r")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("WARMLANE_REDIS_URL")
            && stderr.contains("did you mean WARMLANE_REDIS__URL?"),
        "{stderr}"
    );
    let (code, _, stderr) = warmlane_env(
        &["config", "show"],
        &[("WARMLANE_PIPELINE__CHUNK_SIZE", "big")],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("WARMLANE_PIPELINE__CHUNK_SIZE"), "{stderr}");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[lanes]\nheavy_from = 7\n").unwrap();
    let (code, _, stderr) =
        warmlane_env(&["config", "show", "--config", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("heavy_from"),
        "{stderr}"
    );
}

#[test]
fn run_shows_progress_only_on_a_terminal() {
    let pdf = support::data("en-debian-faq.pdf");
    let pdf = pdf.to_str().unwrap();
    // Not a terminal: the summary line only, no bar, no escape sequence.
    let (code, _, stderr) = warmlane(&["run", pdf]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.starts_with("warmlane: 1 file(s), 73 pages"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains("lane)"),
        "{stderr}"
    );
    // A terminal (a pseudo-terminal from `script`): the document's bar and
    // the run's, then the summary.
    let Ok(out) = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} run {pdf} > /dev/null",
            env!("CARGO_BIN_EXE_warmlane")
        ))
        .arg("/dev/null")
        .output()
    else {
        panic!("this test needs `script` (apt-get install bsdutils)");
    };
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{seen}");
    assert!(seen.contains("en-debian-faq.pdf (light lane)"), "{seen}");
    assert!(seen.contains("pages/s") && seen.contains("files"), "{seen}");
    assert!(seen.contains("warmlane: 1 file(s), 73 pages"), "{seen}");
}

#[test]
fn chunks_do_not_depend_on_how_pages_are_batched() {
    // Replicas parse a batch page by page when they must (a stalled worker,
    // a page that fails): its chunks must be those of the whole batch.
    for name in ["en-debian-faq.pdf", "ja-maint-guide.pdf"] {
        let pdf = support::data(name);
        let pdf = pdf.to_str().unwrap();
        let runs: Vec<String> = ["1", "3", "16", "64"]
            .iter()
            .map(|n| {
                let (code, stdout, stderr) = warmlane(&["run", "--batch-pages", n, pdf]);
                assert_eq!(code, 0, "{name}, {n} pages a batch: {stderr}");
                stdout
            })
            .collect();
        assert!(runs[0].lines().count() > 50, "{name}: {}", runs[0]);
        for (run, n) in runs.iter().zip(["1", "3", "16", "64"]).skip(1) {
            let first = runs[0].lines().zip(run.lines()).position(|(a, b)| a != b);
            assert!(
                run == &runs[0],
                "{name}: {n} pages a batch differ from 1 at chunk {first:?}"
            );
        }
    }
}

/// The records `stdout` has for `doc`, as written, with `doc` named `as_doc`.
fn lines_of(stdout: &str, doc: &str, as_doc: &str) -> Vec<serde_json::Value> {
    records(stdout)
        .into_iter()
        .filter(|r| r["doc"] == doc)
        .map(|mut r| {
            r["doc"] = as_doc.into();
            r
        })
        .collect()
}

#[test]
fn a_small_file_named_after_large_ones_goes_ahead_of_them() {
    let [faq, ja, ko] = [
        "en-debian-faq.pdf",
        "ja-maint-guide.pdf",
        "ko-ob-mathleading.pdf",
    ]
    .map(support::data);
    let [faq, ja, ko] = [&faq, &ja, &ko].map(|p| p.to_str().unwrap().to_string());
    // 73 and 69 pages are heavy here, 4 are light; a page a batch makes
    // the heavy documents long.
    let env = [("WARMLANE_LANES__HEAVY_FROM_PAGES", "50")];
    let args = ["run", "--batch-pages", "1"];
    let (code, stdout, stderr) = warmlane_env(
        &[&args[..], &[faq.as_str(), ja.as_str(), ko.as_str()]].concat(),
        &env,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.starts_with("warmlane: 3 file(s), 146 pages"),
        "{stderr}"
    );
    let recs = records(&stdout);
    let first = |doc: &str| recs.iter().position(|r| r["doc"] == doc).unwrap();
    let last = |doc: &str| recs.iter().rposition(|r| r["doc"] == doc).unwrap();
    // One heavy document at a time: the second waits for the first...
    assert!(last(&faq) < first(&ja), "{stdout}");
    // ...and the small file after them does not wait for either.
    assert!(last(&ko) < last(&faq), "{stdout}");
    // Interleaved, each document's records are those it has alone.
    for doc in [&faq, &ja, &ko] {
        let (code, alone, stderr) = warmlane_env(&[&args[..], &[doc.as_str()]].concat(), &env);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(lines_of(&stdout, doc, doc), records(&alone), "{doc}");
    }
}

#[test]
fn many_files_run_side_by_side_and_each_comes_out_whole() {
    let dir = support::scratch("cli-many-files");
    let sources = ["en-lppl.pdf", "ko-ob-mathleading.pdf"].map(support::data);
    let alone: Vec<String> = sources
        .iter()
        .map(|s| {
            let (code, stdout, stderr) = warmlane(&["run", "--quiet", s.to_str().unwrap()]);
            assert_eq!(code, 0, "{stderr}");
            stdout
        })
        .collect();
    // 40 files, and one in the middle that is not a PDF.
    let mut files = Vec::new();
    for i in 0..40 {
        let file = dir.join(format!("f{i:02}.pdf"));
        std::fs::copy(&sources[i % 2], &file).unwrap();
        files.push(file.to_str().unwrap().to_string());
        if i == 20 {
            let bad = dir.join("bad.pdf");
            std::fs::copy(support::data("not-a-pdf.pdf"), &bad).unwrap();
            files.push(bad.to_str().unwrap().to_string());
        }
    }
    let args: Vec<&str> = ["run", "--open", "3"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let (code, stdout, stderr) = warmlane(&args);
    assert_eq!(code, 1, "one file is not a PDF: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].contains("bad.pdf") && lines[0].contains("not a PDF"));
    assert!(
        lines[1].starts_with("warmlane: 41 file(s), 240 pages")
            && lines[1].contains("1 unreadable file(s)"),
        "{stderr}"
    );
    for (i, file) in files.iter().filter(|f| !f.ends_with("bad.pdf")).enumerate() {
        let source = sources[i % 2].to_str().unwrap();
        assert_eq!(
            lines_of(&stdout, file, source),
            records(&alone[i % 2]),
            "{file}"
        );
    }
}

#[test]
fn a_closed_pipe_ends_a_run_quietly() {
    use std::io::BufRead;
    let pdf = support::data("en-debian-faq.pdf");
    let pdf = pdf.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["run", "--batch-pages", "1", pdf, pdf, pdf, pdf, pdf, pdf])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Like `warmlane run … | head -1`.
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("\"chunk\":0"), "{first}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("warmlane run went on after its output was closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
