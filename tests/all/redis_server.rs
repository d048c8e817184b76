//! A real `redis-server` for tests: started on a free loopback port in a
//! directory of its own, so tests can stop, restart and flush it without
//! touching the machine's own Redis. Shared by the host's unit tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) test Redis.
pub(crate) struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Whether it keeps an append-only file (fsync'd on every write), so a
    /// restart finds what it held.
    persistent: bool,
}

impl RedisServer {
    /// Starts a server on a free port; panics with the one-line fix when
    /// `redis-server` is not installed.
    pub(crate) fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// Starts a server that keeps an append-only file: a restart (even
    /// after a kill) finds what it held.
    #[allow(dead_code)] // not every test binary that includes this uses it
    pub(crate) fn start_persistent() -> RedisServer {
        Self::start_with(true)
    }

    fn start_with(persistent: bool) -> RedisServer {
        // A port free a moment ago may be taken by another test's process
        // before redis-server binds it: then try another.
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let dir =
                std::env::temp_dir().join(format!("warmlane-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a directory for the test Redis");
            let mut server = RedisServer {
                port,
                dir,
                child: None,
                persistent,
            };
            if server.launch() {
                return server;
            }
        }
        panic!("redis-server could not get a free loopback port in 10 tries")
    }

    /// `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its data is gone: nothing is saved).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty, unless it is persistent);
    /// waits until it answers.
    pub(crate) fn restart(&mut self) {
        assert!(
            self.launch(),
            "redis-server did not start again on port {}",
            self.port
        );
    }

    /// Starts redis-server on this port; whether it is the one answering
    /// there (it exits at once if the port is taken).
    fn launch(&mut self) -> bool {
        self.stop();
        let aof = if self.persistent { "yes" } else { "no" };
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", aof, "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); install it: apt-get install redis-server")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if !matches!(child.try_wait(), Ok(None)) {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                // Ours if it answers as Redis does, even while it loads its
                // append-only file (`-LOADING`); the tests' clients retry
                // until it has.
                let mut reply = [0u8; 1];
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut reply).is_ok()
                    && (&reply == b"+" || &reply == b"-")
                    && matches!(child.try_wait(), Ok(None))
                {
                    self.child = Some(child);
                    return true;
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs one command, e.g. `["SCRIPT", "FLUSH"]`.
    pub(crate) fn command(&self, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(self.url()).expect("a Redis URL");
        let mut con = client.get_connection().expect("connect to the test Redis");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut con).expect("a Redis command")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
