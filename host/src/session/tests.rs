//! One suite, two stores: sessions in memory and in a real `redis-server`.

use std::time::Duration;

use super::{
    CallRecord, IncrementError, MemorySessionStore, RedisSessionStore, SessionId, SessionStore,
    StoreError, Usage,
};

use crate::redis_server::RedisServer;

/// Calls the stores under test keep in a session's log.
const CALL_LOG: usize = 3;

fn id(s: &str) -> SessionId {
    SessionId::parse(s).unwrap()
}

/// Everything a store must do, for a store whose sessions hold at most 64
/// bytes and live `ttl` without use.
fn suite(store: &dyn SessionStore, ttl: Duration) {
    let (a, b) = (id("a"), id("b"));
    // Nothing exists until it is created.
    assert!(!store.exists(&a).unwrap());
    assert_eq!(store.get(&a, "k"), Err(StoreError::NoSession));
    assert_eq!(
        store.set(&a, "k", b"v".to_vec()),
        Err(StoreError::NoSession)
    );
    assert!(store.create(&a).unwrap());
    assert!(!store.create(&a).unwrap(), "created twice");
    assert!(store.create(&b).unwrap());
    assert!(store.exists(&a).unwrap());
    assert_eq!(store.list_keys(&a).unwrap(), Vec::<String>::new());

    // Keys are scoped per session; values are bytes.
    store.set(&a, "k", vec![0, 159, 255]).unwrap();
    store.set(&b, "k", b"2".to_vec()).unwrap();
    assert_eq!(store.get(&a, "k").unwrap(), Some(vec![0, 159, 255]));
    assert_eq!(store.get(&a, "missing").unwrap(), None);
    store.set(&a, "j", b"x".to_vec()).unwrap();
    assert_eq!(
        store.list_keys(&a).unwrap(),
        vec!["j".to_string(), "k".to_string()]
    );
    assert_eq!(store.list_keys(&b).unwrap(), vec!["k".to_string()]);
    assert!(store.delete(&a, "j").unwrap());
    assert!(!store.delete(&a, "j").unwrap());

    // Size: keys and values count; replacing frees the old value's space.
    store.set(&a, "big", vec![7; 50]).unwrap(); // 4 + 53 = 57 of 64
    assert_eq!(
        store.set(&a, "more", vec![7; 10]),
        Err(StoreError::TooLarge(64))
    );
    store.set(&a, "big", vec![7; 55]).unwrap(); // 4 + 58 = 62
    assert!(store.delete(&a, "big").unwrap());
    store.set(&a, "more", vec![7; 10]).unwrap(); // with "k": 18 of 64

    // Compare-and-swap: from a value, from absence, to absence.
    let cas = |key, expected: Option<&[u8]>, new: Option<&[u8]>| {
        store.compare_and_swap(&a, key, expected, new.map(<[u8]>::to_vec))
    };
    assert_eq!(cas("c", None, Some(b"1")), Ok(true));
    assert_eq!(cas("c", None, Some(b"2")), Ok(false), "the key is there");
    assert_eq!(
        cas("c", Some(b"2"), Some(b"3")),
        Ok(false),
        "the value differs"
    );
    assert_eq!(cas("c", Some(b"1"), Some(b"2")), Ok(true));
    assert_eq!(store.get(&a, "c").unwrap(), Some(b"2".to_vec()));
    assert_eq!(cas("c", Some(b"2"), None), Ok(true));
    assert_eq!(store.get(&a, "c").unwrap(), None);
    assert_eq!(cas("c", Some(b""), None), Ok(false), "empty is not absent");
    assert_eq!(
        cas("c", None, Some(&[7; 60])),
        Err(StoreError::TooLarge(64))
    );
    assert_eq!(store.get(&a, "c").unwrap(), None);
    assert_eq!(
        store.compare_and_swap(&id("none"), "c", None, None),
        Err(StoreError::NoSession)
    );

    // Counters: exact 64-bit sums of decimal text; anything else refused
    // and left alone.
    assert_eq!(store.increment(&a, "n", 5), Ok(5));
    assert_eq!(store.increment(&a, "n", -7), Ok(-2));
    assert_eq!(store.get(&a, "n").unwrap(), Some(b"-2".to_vec()));
    store.set(&a, "n", b"40".to_vec()).unwrap();
    assert_eq!(store.increment(&a, "n", 2), Ok(42));
    for bad in [&b"007"[..], b"+1", b" 1", b"1.5", b"-0", b"", b"x"] {
        store.set(&a, "n", bad.to_vec()).unwrap();
        assert_eq!(
            store.increment(&a, "n", 1),
            Err(IncrementError::NotACounter),
            "{bad:?}"
        );
        assert_eq!(store.get(&a, "n").unwrap(), Some(bad.to_vec()));
    }
    store
        .set(&a, "n", i64::MAX.to_string().into_bytes())
        .unwrap();
    assert_eq!(
        store.increment(&a, "n", 1),
        Err(IncrementError::NotACounter)
    );
    assert_eq!(store.increment(&a, "n", -1), Ok(i64::MAX - 1));
    assert_eq!(store.increment(&a, "n", i64::MIN), Ok(-2));
    // A counter that would outgrow the session is refused and unchanged.
    store.set(&a, "n", b"0".to_vec()).unwrap(); // 20
    store.set(&a, "pad", vec![7; 41]).unwrap(); // 64: full
    assert_eq!(store.increment(&a, "n", 9), Ok(9));
    assert_eq!(
        store.increment(&a, "n", 1),
        Err(IncrementError::Store(StoreError::TooLarge(64)))
    );
    assert_eq!(store.get(&a, "n").unwrap(), Some(b"9".to_vec()));
    assert!(store.delete(&a, "pad").unwrap());
    assert!(store.delete(&a, "n").unwrap());
    assert_eq!(
        store.increment(&a, "fresh", 1),
        Ok(1),
        "a new key counts from 0"
    );
    assert!(store.delete(&a, "fresh").unwrap());
    assert_eq!(
        store.increment(&id("none"), "n", 1),
        Err(IncrementError::Store(StoreError::NoSession))
    );

    // Usage adds up, and the last calls are kept in order.
    let call = |n: u64| CallRecord {
        tool: format!("tool-{n}"),
        at_ms: 1_000 + n,
        micros: 250,
        cpu_nanos: 90,
        tokens: 7,
        requests: n,
        error: (n % 2 == 1).then(|| format!("error {n}")),
    };
    assert_eq!(store.calls(&a, 10).unwrap(), vec![]);
    store.record(&a, &call(0)).unwrap();
    store.record(&a, &call(1)).unwrap();
    assert_eq!(
        store.usage(&a).unwrap(),
        Usage {
            calls: 2,
            micros: 500,
            tokens: 14,
            cpu_nanos: 180,
            requests: 1,
        }
    );
    assert_eq!(store.usage(&b).unwrap(), Usage::default());
    assert_eq!(store.calls(&a, 10).unwrap(), vec![call(0), call(1)]);
    assert_eq!(store.calls(&a, 1).unwrap(), vec![call(1)]);
    for n in 2..6 {
        store.record(&a, &call(n)).unwrap();
    }
    // The log keeps the last CALL_LOG, outside the size limit.
    let kept: Vec<CallRecord> = (6 - CALL_LOG as u64..6).map(call).collect();
    assert_eq!(store.calls(&a, 10).unwrap(), kept);
    assert_eq!(store.usage(&a).unwrap().calls, 6);
    assert_eq!(store.calls(&b, 10).unwrap(), vec![]);
    assert_eq!(store.calls(&id("none"), 10), Err(StoreError::NoSession));

    // Removing takes everything.
    assert!(store.remove(&b).unwrap());
    assert!(!store.remove(&b).unwrap());
    assert_eq!(store.list_keys(&b), Err(StoreError::NoSession));

    // Use keeps a session alive past its time to live...
    for _ in 0..8 {
        std::thread::sleep(ttl / 4);
        assert!(
            store.get(&a, "k").unwrap().is_some(),
            "a session in use expired"
        );
    }
    // ...and idleness ends it.
    std::thread::sleep(ttl + ttl / 2);
    assert!(!store.exists(&a).unwrap(), "an idle session lived on");
    assert_eq!(store.get(&a, "k"), Err(StoreError::NoSession));
}

/// Many threads updating one session at once, as a model's parallel tool
/// calls do: every increment and every compare-and-swap counts.
fn parallel_updates(store: &dyn SessionStore) {
    const THREADS: usize = 8;
    const EACH: i64 = 40;
    let s = id("parallel");
    store.create(&s).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..EACH {
                    store.increment(&s, "hits", 1).unwrap();
                    // A counter kept by read, compute, compare-and-swap.
                    loop {
                        let now = store.get(&s, "cas").unwrap();
                        let n: i64 = now
                            .as_deref()
                            .map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        let next = (n + 1).to_string().into_bytes();
                        if store
                            .compare_and_swap(&s, "cas", now.as_deref(), Some(next))
                            .unwrap()
                        {
                            break;
                        }
                    }
                }
            });
        }
    });
    let total = (THREADS as i64 * EACH).to_string().into_bytes();
    assert_eq!(store.get(&s, "hits").unwrap(), Some(total.clone()));
    assert_eq!(store.get(&s, "cas").unwrap(), Some(total));
}

#[test]
fn the_memory_store_passes_the_suite() {
    let ttl = Duration::from_millis(600);
    suite(&MemorySessionStore::new(64, ttl, CALL_LOG), ttl);
    parallel_updates(&MemorySessionStore::new(1024, ttl * 100, CALL_LOG));
}

#[test]
fn the_redis_store_passes_the_suite_with_one_key_per_session() {
    let server = RedisServer::start();
    let ttl = Duration::from_millis(600);
    let store = RedisSessionStore::new(
        &server.url(),
        "t",
        64,
        ttl,
        CALL_LOG,
        Duration::from_secs(1),
    )
    .unwrap();
    suite(&store, ttl);
    parallel_updates(
        &RedisSessionStore::new(
            &server.url(),
            "p",
            1024,
            ttl * 100,
            CALL_LOG,
            Duration::from_secs(1),
        )
        .unwrap(),
    );
    let s = id("keys");
    store.create(&s).unwrap();
    store.set(&s, "one", b"1".to_vec()).unwrap();
    store.set(&s, "two", b"2".to_vec()).unwrap();
    assert_eq!(store.key(&s), "t:{session:keys}");
    match server.command(&["KEYS", "t:*"]) {
        redis::Value::Array(keys) => assert_eq!(keys.len(), 1, "{keys:?}"),
        other => panic!("KEYS answered {other:?}"),
    }
}

#[test]
fn a_session_in_redis_is_shared_and_its_outage_is_reported() {
    let mut server = RedisServer::start();
    let open = || {
        RedisSessionStore::new(
            &server.url(),
            "t",
            1024,
            Duration::from_secs(60),
            CALL_LOG,
            Duration::from_millis(200),
        )
        .unwrap()
    };
    let (first, second) = (open(), open());
    let s = SessionId::random();
    first.create(&s).unwrap();
    first.set(&s, "k", b"from the first".to_vec()).unwrap();
    assert_eq!(
        second.get(&s, "k").unwrap(),
        Some(b"from the first".to_vec())
    );
    server.command(&["SCRIPT", "FLUSH"]);
    assert!(second.exists(&s).unwrap());
    server.stop();
    assert!(matches!(
        second.get(&s, "k"),
        Err(StoreError::Unavailable(_))
    ));
    server.restart();
    // An empty Redis: the session is gone, and says so.
    assert_eq!(second.get(&s, "k"), Err(StoreError::NoSession));
}

#[test]
fn ids_are_checked_and_random_ones_do_not_repeat() {
    assert!(SessionId::parse("ok-id_1").is_ok());
    assert!(SessionId::parse("").is_err());
    assert!(SessionId::parse("no spaces").is_err());
    assert!(SessionId::parse(&"x".repeat(129)).is_err());
    let ids: std::collections::HashSet<SessionId> =
        (0..1000).map(|_| SessionId::random()).collect();
    assert_eq!(ids.len(), 1000);
    let one = SessionId::random();
    assert!(SessionId::parse(one.as_str()).is_ok());
    assert_eq!(one.as_str().len(), 34);
}

#[test]
fn a_call_error_is_cut_on_a_character_boundary() {
    assert_eq!(CallRecord::error_text("short"), "short");
    // Two-byte characters: the limit falls inside one when it is odd.
    let long = "é".repeat(CallRecord::ERROR_BYTES);
    let cut = CallRecord::error_text(&long);
    assert_eq!(cut.len(), CallRecord::ERROR_BYTES / 2 * 2);
    assert!(cut.chars().all(|c| c == 'é'));
    let odd = format!("a{long}");
    let cut = CallRecord::error_text(&odd);
    assert_eq!(cut.len(), CallRecord::ERROR_BYTES - 1);
    assert!(odd.starts_with(&cut));
}
