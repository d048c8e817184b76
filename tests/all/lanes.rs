//! Lanes and budgets through the host: real PDFs, real components.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use warmlane_host::{BudgetError, Config, Event, Host, Lane, SubmitError, ToolError};

use crate::support;

fn host(toml: &str) -> Host {
    let config = Config::from_toml(toml).expect("config");
    let host = Host::new(config).expect("start the host");
    assert!(host.wait_warm(Duration::from_secs(60)));
    host
}

/// Runs a job to the end on this thread; the time it finished, its pages
/// and its errors.
fn run(host: &Host, name: &str) -> (Instant, u32, u32) {
    let doc = support::open(name, None);
    let mut options = host.document_options();
    options.batch_pages = 1;
    let summary = host
        .process(doc, &options, name, &mut |_| {})
        .expect("accepted");
    (Instant::now(), summary.pages, summary.page_errors)
}

#[test]
fn documents_are_classified_by_size() {
    let host = host("[lanes]\nheavy_from_pages = 50\n");
    assert_eq!(
        host.lane_for(&support::open("en-debian-faq.pdf", None)),
        Lane::Heavy
    );
    assert_eq!(
        host.lane_for(&support::open("en-lppl.pdf", None)),
        Lane::Light
    );
    let job = host
        .submit(
            support::open("en-lppl.pdf", None),
            &host.document_options(),
            "lppl",
        )
        .unwrap();
    assert_eq!(
        (job.lane(), job.pages(), job.id()),
        (Lane::Light, 8, "lppl")
    );
}

#[test]
fn a_light_document_finishes_while_a_heavy_one_runs() {
    // One core's worth of heavy work, so the heavy job is slow and the
    // light lane's own worker is all the light job has.
    let host = host("[pipeline]\nworkers = 1\n[lanes]\nheavy_from_pages = 50\n");
    std::thread::scope(|s| {
        let (started_tx, started) = mpsc::channel();
        let host = &host;
        let heavy = s.spawn(move || {
            let doc = support::open("en-debian-faq.pdf", None);
            let mut options = host.document_options();
            options.batch_pages = 1;
            let mut told = false;
            host.process(doc, &options, "heavy", &mut |e| {
                if let Event::Progress { .. } = e
                    && !told
                {
                    told = true;
                    let _ = started_tx.send(());
                }
            })
            .expect("accepted");
            Instant::now()
        });
        started.recv().expect("the heavy job started");
        let (light_done, pages, errors) = run(host, "en-lppl.pdf");
        assert_eq!((pages, errors), (8, 0));
        let heavy_done = heavy.join().unwrap();
        assert!(
            light_done < heavy_done,
            "the light job waited for the heavy one"
        );
    });
    let [light, heavy] = host.lane_stats();
    assert_eq!((light.admitted, light.finished, light.borrowed), (1, 1, 0));
    assert_eq!((heavy.admitted, heavy.finished, heavy.batches), (1, 1, 73));
    assert_eq!((light.wait.count(), heavy.wait.count()), (1, 1));
}

#[test]
fn a_full_lane_refuses_with_a_clear_error_and_keeps_what_it_has() {
    let host = host("[lanes]\nheavy_from_pages = 50\n[lanes.heavy]\nrunning = 1\nqueue = 1\n");
    let options = host.document_options();
    let faq = || support::open("en-debian-faq.pdf", None);
    let first = host.submit(faq(), &options, "first").unwrap();
    let second = host.submit(faq(), &options, "second").unwrap();
    let err = host.submit(faq(), &options, "third").unwrap_err();
    assert_eq!(
        err,
        SubmitError::LaneFull {
            lane: Lane::Heavy,
            queued: 1
        }
    );
    assert!(err.to_string().contains("lanes.heavy.queue"), "{err}");
    // The light lane is not affected.
    let (_, pages, _) = run(&host, "en-lppl.pdf");
    assert_eq!(pages, 8);
    // Nothing accepted is lost: both jobs finish, in full.
    let [_, heavy] = host.lane_stats();
    assert_eq!((heavy.running, heavy.queued, heavy.refused), (1, 1, 1));
    for job in [first, second] {
        let summary = job.run(&mut |_| {});
        assert_eq!((summary.pages, summary.page_errors), (73, 0));
    }
}

#[test]
fn heavy_documents_take_turns() {
    let host = host("[pipeline]\nworkers = 1\n[lanes]\nheavy_from_pages = 50\n");
    let mut options = host.document_options();
    options.batch_pages = 4;
    let a = host
        .submit(support::open("en-debian-faq.pdf", None), &options, "a")
        .unwrap();
    let b = host
        .submit(support::open("ja-maint-guide.pdf", None), &options, "b")
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for job in [a, b] {
            let tx = tx.clone();
            s.spawn(move || {
                let id = job.id().to_string();
                job.run(&mut |e| {
                    if let Event::Progress { done, .. } = e {
                        let _ = tx.send((id.clone(), done));
                    }
                })
            });
        }
    });
    drop(tx);
    let order: Vec<(String, u32)> = rx.iter().collect();
    // Before either finished, both had made progress.
    let first_done = order
        .iter()
        .position(|(id, done)| (id == "a" && *done == 73) || (id == "b" && *done == 69))
        .unwrap();
    let before: Vec<&str> = order[..first_done]
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(before.contains(&"a") && before.contains(&"b"), "{order:?}");
}

#[test]
fn parsing_draws_pages_from_its_budget_and_light_work_keeps_its_share() {
    // 60 pages a second with a burst of 20; the heavy 73-page document
    // needs about a second, during which the light lane's reserve serves
    // the 8-page one.
    let host = host(
        "[lanes]\nheavy_from_pages = 50\n\
         [budgets.pages]\ncapacity = 60\nperiod_secs = 1\nburst = 20\nlight_share = 0.5\n\
         [components.pdf-pages]\nbudget = \"pages\"\n",
    );
    let started = Instant::now();
    let heavy_took = std::thread::scope(|s| {
        let heavy = s.spawn(|| run(&host, "en-debian-faq.pdf"));
        std::thread::sleep(Duration::from_millis(100));
        let (light_done, pages, errors) = run(&host, "en-lppl.pdf");
        assert_eq!((pages, errors), (8, 0));
        let (heavy_done, pages, errors) = heavy.join().unwrap();
        assert_eq!((pages, errors), (73, 0));
        assert!(
            light_done < heavy_done,
            "the light job waited for the heavy one's budget"
        );
        heavy_done - started
    });
    let stats = host.budget_stats();
    let pages = &stats[0];
    assert_eq!((pages.drawn_light, pages.drawn_heavy), (8, 73));
    assert_eq!(pages.grants, 81);
    // The budget held the heavy job back: 73 pages at 60 a second after a
    // burst of 20 cannot take less than (73 - 20) / 60 = 0.88 s.
    assert!(heavy_took >= Duration::from_millis(880), "{heavy_took:?}");
    assert!(
        pages.wait.count() == 81 && pages.wait.total_nanos > 0,
        "{pages:?}"
    );
}

#[test]
fn tool_calls_draw_their_cost_and_are_refused_rather_than_kept_waiting() {
    // The test guest's schema allows extra fields, as an LLM tool's would
    // list its `max_tokens`; it draws the number under `/weight`.
    let dir = support::plugin_dir("lanes-cost-field", &[("hostile", "hostile")]);
    let host = host(&format!(
        "[plugins]\ndir = \"{}\"\n\
         [budgets.calls]\ncapacity = 2\nburst = 2\nlight_share = 0\n\
         [budgets.bytes]\ncapacity = 1000\nburst = 1000\n\
         [components.text-stats]\nbudget = \"calls\"\ndeadline_ms = 1000\n\
         [components.hostile]\nbudget = \"bytes\"\ncost = {{ field = \"/weight\" }}\n",
        dir.display()
    ));
    let input = r#"{"text":"one two"}"#;
    host.call_tool("text-stats", input, None).unwrap();
    host.call_tool("text-stats", input, None).unwrap();
    match host.call_tool("text-stats", input, None) {
        Err(ToolError::Budget(BudgetError::Exhausted {
            budget,
            retry_after,
        })) => {
            assert_eq!(budget, "calls");
            // One call's worth at 2 a minute, longer than the 1 s deadline.
            assert!(retry_after > Duration::from_secs(25), "{retry_after:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A cost read from the input: missing, it is the input that is wrong.
    let session = host.create_session().unwrap();
    match host.call_tool("hostile", r#"{"do":"echo"}"#, Some(&session)) {
        Err(ToolError::InvalidInput(why)) => assert!(why.contains("/weight"), "{why}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
    // Input the schema refuses costs nothing.
    match host.call_tool("hostile", r#"{"do":"fly","weight":5}"#, Some(&session)) {
        Err(ToolError::InvalidInput(why)) => assert!(why.contains("/do"), "{why}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
    host.call_tool("hostile", r#"{"do":"echo","weight":250}"#, Some(&session))
        .unwrap();
    let by_name = |n: &str| {
        host.budget_stats()
            .into_iter()
            .find(|b| b.name == n)
            .unwrap()
    };
    assert_eq!((by_name("calls").grants, by_name("calls").refused), (2, 1));
    assert_eq!(by_name("bytes").drawn_light, 250);
    // The session is charged what its calls drew.
    assert_eq!(host.session_usage(&session).unwrap().tokens, 250);
}

#[test]
fn a_cost_rule_that_does_not_fit_the_component_is_refused_at_start() {
    let config = Config::from_toml(
        "[budgets.b]\ncapacity = 10\nburst = 10\n[components.text-stats]\nbudget = \"b\"\ncost = \"pages\"\n",
    )
    .unwrap();
    let err = Host::new(config).err().expect("refused");
    assert!(format!("{err:#}").contains("is a tool"), "{err:#}");
}

/// A document's batches reuse the parser and chunker instances its earlier
/// batches used, and once it is done none waits for it.
#[test]
fn a_documents_batches_reuse_its_instances_until_it_is_done() {
    let host = host("");
    let stats = |name: &str| {
        host.pool_stats()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
    };
    let (_, pages, errors) = run(&host, "en-lppl.pdf");
    assert!(pages >= 4 && errors == 0, "{pages} pages, {errors} errors");
    let deadline = Instant::now() + Duration::from_secs(10);
    // Eight batches of one page: the parser is reused (the chunker, called
    // once for so short a document, may not be).
    assert!(stats("pdf-pages").reuses >= 1, "{:?}", stats("pdf-pages"));
    for pool in ["pdf-pages", "chunker"] {
        while stats(pool).bound > 0 {
            assert!(Instant::now() < deadline, "{pool}: {:?}", stats(pool));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // With reuse off, every batch gets an instance of its own.
    let host_fresh = self::host("[components.pdf-pages]\nreuse_calls = 1\n");
    let (_, pages, _) = run(&host_fresh, "en-lppl.pdf");
    let fresh = host_fresh
        .pool_stats()
        .into_iter()
        .find(|(n, _)| n == "pdf-pages")
        .unwrap()
        .1;
    assert_eq!(fresh.reuses, 0, "{fresh:?}");
    assert!(fresh.hits + fresh.misses >= u64::from(pages), "{fresh:?}");
}
