//! The guest crates' own unit tests (tokenizer, splitter, CMaps, layout),
//! run natively so that one `cargo test` covers the whole project.

use std::path::Path;
use std::process::Command;

#[test]
fn guest_crates_unit_tests_pass() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("components/Cargo.toml");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-unit-tests");
    let out = Command::new(env!("CARGO"))
        .args([
            "test",
            "--release",
            "--lib",
            "-p",
            "pdf-syntax",
            "-p",
            "pdf-pages",
            "-p",
            "chunker",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo test on the guest crates");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "guest unit tests failed:\n{stdout}\n{stderr}"
    );
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(
        passed >= 20,
        "expected the guest unit tests to run, saw {passed}:\n{stdout}"
    );
}
