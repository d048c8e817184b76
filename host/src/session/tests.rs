//! One suite, two stores: sessions in memory and in a real `redis-server`.

use std::time::Duration;

use super::{
    CallRecord, MemorySessionStore, RedisSessionStore, SessionId, SessionStore, StoreError, Usage,
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
    store.set(&a, "more", vec![7; 10]).unwrap();

    // Usage adds up, and the last calls are kept in order.
    let call = |n: u64| CallRecord {
        tool: format!("tool-{n}"),
        at_ms: 1_000 + n,
        micros: 250,
        cpu_nanos: 90,
        tokens: 7,
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

#[test]
fn the_memory_store_passes_the_suite() {
    let ttl = Duration::from_millis(600);
    suite(&MemorySessionStore::new(64, ttl, CALL_LOG), ttl);
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
