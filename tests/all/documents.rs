//! Whole documents: errors that name what is wrong, encryption, damage,
//! chunk provenance, and batches that hold only what their pages need.

use std::sync::Arc;

use warmlane_host::{Access, DocumentError, PdfDocument};

use crate::support;

fn open_err(name: &str, password: Option<&str>) -> DocumentError {
    match PdfDocument::open(std::fs::read(support::data(name)).unwrap(), password) {
        Ok(_) => panic!("{name} opened"),
        Err(e) => e,
    }
}

#[test]
fn not_a_pdf_is_named_as_such() {
    let e = open_err("not-a-pdf.pdf", None);
    assert!(matches!(e, DocumentError::NotPdf(_)), "{e}");
    assert!(e.to_string().contains("no %PDF- header"), "{e}");
    assert!(matches!(
        PdfDocument::open(Vec::new(), None),
        Err(DocumentError::NotPdf(_))
    ));
}

#[test]
fn encrypted_needs_its_password() {
    assert_eq!(
        open_err("encrypted-graph.pdf", None),
        DocumentError::PasswordRequired { given: false }
    );
    assert_eq!(
        open_err("encrypted-graph.pdf", Some("wrong")),
        DocumentError::PasswordRequired { given: true }
    );
    for password in ["user", "owner"] {
        let doc = support::open("encrypted-graph.pdf", Some(password));
        assert_eq!(doc.access(), Access::Decrypted);
        assert_eq!(doc.page_count(), 1);
        // Decrypted, its one page is read: a chart drawn as an image, and no
        // text, which the page's error says.
        let out = support::process(&doc);
        assert_eq!(out.pages.len() + out.errors.len(), 1);
        assert!(
            out.errors
                .iter()
                .all(|(_, e)| e.starts_with("no text layer: the page shows 1 image")),
            "{:?}",
            out.errors
        );
    }
}

#[test]
fn damaged_file_is_repaired_not_refused() {
    let doc = support::open("damaged-badlin1.pdf", None);
    assert_ne!(doc.access(), Access::Decrypted);
    assert_eq!(doc.page_count(), 30);
    let out = support::process(&doc);
    assert_eq!(out.pages.len(), 30);
    assert!(out.pages[29].1.contains("Potato 29"), "{:?}", out.pages[29]);
}

#[test]
fn a_lost_cross_reference_table_is_rebuilt() {
    // A real document whose startxref points nowhere.
    let mut bytes = std::fs::read(support::data("en-lppl.pdf")).unwrap();
    let at = bytes.windows(9).rposition(|w| w == b"startxref").unwrap();
    let digits = at + 10;
    for b in bytes[digits..]
        .iter_mut()
        .take_while(|b| b.is_ascii_digit())
    {
        *b = b'9';
    }
    let doc = Arc::new(PdfDocument::open(bytes, None).unwrap());
    assert_eq!(doc.access(), Access::Repaired);
    assert_eq!(doc.page_count(), 8);
    let out = support::process(&doc);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(out.pages[0].1.contains("Project Public License"));
}

#[test]
fn truncated_file_is_an_error_or_partial_never_a_panic() {
    let bytes = std::fs::read(support::data("en-lppl.pdf")).unwrap();
    for cut in [100, bytes.len() / 3, bytes.len() - 200] {
        match PdfDocument::open(bytes[..cut].to_vec(), None) {
            Ok(doc) => {
                let doc = Arc::new(doc);
                let out = support::process(&doc);
                assert_eq!(
                    out.pages.len() + out.errors.len(),
                    doc.page_count() as usize
                );
            }
            Err(e) => assert!(
                matches!(e, DocumentError::Unreadable(_)),
                "cut at {cut}: {e}"
            ),
        }
    }
}

#[test]
fn a_truncated_file_keeps_its_intact_early_pages() {
    // The licence rewritten without object streams (as most producers
    // write), then cut: everything from the cut on is lost, the catalog
    // and the page tree with it.
    let mut doc = lopdf::Document::load_with_options(
        support::data("en-lppl.pdf"),
        lopdf::LoadOptions::default(),
    )
    .unwrap();
    let mut classic = Vec::new();
    doc.save_to(&mut classic).unwrap();
    let whole = support::process(&Arc::new(PdfDocument::open(classic.clone(), None).unwrap()));
    assert_eq!(whole.pages.len(), 8);
    for cut in [classic.len() * 2 / 3, classic.len() / 2] {
        let doc = PdfDocument::open(classic[..cut].to_vec(), None)
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(doc.access(), Access::Repaired);
        let doc = Arc::new(doc);
        let out = support::process(&doc);
        assert_eq!(
            out.pages.len() + out.errors.len(),
            doc.page_count() as usize,
            "every page found is reported once"
        );
        // The first page is intact, and reads as it does in the whole file
        // but for what the lost part held (the font programs at the end
        // give the ligatures: "modi cation").
        let first = out.pages.iter().find(|(n, _)| *n == 1).expect("page 1");
        assert!(first.1.contains("Project Public License"), "{}", first.1);
        let words: std::collections::HashSet<&str> = first.1.split_whitespace().collect();
        let expected: Vec<&str> = whole.pages[0].1.split_whitespace().collect();
        let kept = expected.iter().filter(|w| words.contains(*w)).count();
        assert!(
            kept * 100 >= expected.len() * 90,
            "cut at {cut}: {kept} of {} words",
            expected.len()
        );
        assert!(!out.chunks.is_empty());
    }
}

#[test]
fn healthy_files_are_read_lazily() {
    for name in [
        "en-lppl.pdf",
        "en-debian-faq.pdf",
        "ja-maint-guide.pdf",
        "zh-tlmgr-intro.pdf",
    ] {
        assert_eq!(support::open(name, None).access(), Access::Lazy, "{name}");
    }
}

#[test]
fn batches_hold_only_their_pages_objects() {
    let doc = support::open("en-debian-faq.pdf", None);
    let whole = std::fs::metadata(support::data("en-debian-faq.pdf"))
        .unwrap()
        .len() as usize;
    let batch = doc.batch(10..12).unwrap();
    let reopened = PdfDocument::open(batch.clone(), None).unwrap();
    assert_eq!(reopened.page_count(), 2);
    // Fonts are shared by every page, so a batch carries them; it still
    // must not carry the other 71 pages.
    assert!(
        batch.len() < whole / 2,
        "a 2-page batch is {} bytes of a {whole}-byte file",
        batch.len()
    );
}

#[test]
fn chunks_carry_pages_and_offsets_into_page_text() {
    let doc = support::open("en-debian-faq.pdf", None);
    let out = support::process(&doc);
    assert!(out.chunks.len() > 20);
    assert_eq!(out.summary.chunks as usize, out.chunks.len());
    for (i, c) in out.chunks.iter().enumerate() {
        assert_eq!(c.index as usize, i);
        assert!(c.first_page <= c.last_page && c.last_page <= 73);
        assert!(c.size <= 512, "chunk {i} has {} tokens", c.size);
        let first = &out.pages[c.first_page as usize - 1].1;
        let (start, end) = (c.start as usize, c.end as usize);
        if c.first_page == c.last_page {
            assert_eq!(&first[start..end], c.text, "chunk {i}");
        } else {
            // The chunk holds the rest of its first page, then what follows.
            assert!(
                c.text.starts_with(first[start..].trim_end()),
                "chunk {i} starts at page {} byte {start}",
                c.first_page
            );
            let last = &out.pages[c.last_page as usize - 1].1;
            assert!(
                c.text.ends_with(last[..end].trim_start()),
                "chunk {i} ends at page {} byte {end}",
                c.last_page
            );
        }
    }
    // Consecutive chunks advance through the document.
    for w in out.chunks.windows(2) {
        assert!((w[1].first_page, w[1].start) > (w[0].first_page, w[0].start));
    }
}

#[test]
fn corrupted_files_never_panic() {
    // Deterministic damage to real files: bytes overwritten at a stride,
    // runs zeroed, the middle cut out. Any outcome but a panic is fine;
    // every page must still end with text or an error.
    let mut seed = 0x2545_f491_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for name in [
        "en-lppl.pdf",
        "zh-tlmgr-intro.pdf",
        "damaged-badlin1.pdf",
        "ko-ob-mathleading.pdf",
    ] {
        let original = std::fs::read(support::data(name)).unwrap();
        for round in 0..30 {
            let mut bytes = original.clone();
            match round % 3 {
                0 => {
                    for _ in 0..200 {
                        let at = (next() as usize) % bytes.len();
                        bytes[at] = next() as u8;
                    }
                }
                1 => {
                    let at = (next() as usize) % bytes.len();
                    let end = (at + 4096).min(bytes.len());
                    bytes[at..end].fill(0);
                }
                _ => {
                    let at = (next() as usize) % (bytes.len() / 2);
                    bytes.drain(at..at + bytes.len() / 4);
                }
            }
            if let Ok(doc) = PdfDocument::open(bytes, None) {
                let doc = Arc::new(doc);
                let out = support::process(&doc);
                let mut seen: Vec<u32> = out
                    .pages
                    .iter()
                    .map(|p| p.0)
                    .chain(out.errors.iter().map(|e| e.0))
                    .collect();
                seen.sort();
                seen.dedup();
                assert_eq!(
                    seen.len() as u32,
                    doc.page_count(),
                    "{name} round {round}: every page accounted for"
                );
            }
        }
    }
}
