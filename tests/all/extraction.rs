//! Text quality on real documents, against poppler's `pdftotext` for the
//! same pages: recall of character bigrams with white space removed.

use std::collections::HashMap;

use crate::support;

/// Bigrams of `text` without white space, control characters or private-use
/// code points (none of which is text: pdftotext emits the last two for math
/// glyphs it cannot map).
fn bigrams(text: &str) -> HashMap<(char, char), usize> {
    let chars: Vec<char> = text
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && !('\u{E000}'..='\u{F8FF}').contains(c))
        .filter(|c| !is_bidi_control(*c))
        .collect();
    let mut out = HashMap::new();
    for w in chars.windows(2) {
        *out.entry((w[0], w[1])).or_insert(0) += 1;
    }
    out
}

/// Share of the reference's bigrams (with multiplicity) that ours has too.
fn recall(reference: &str, ours: &str) -> f64 {
    let (r, o) = (bigrams(reference), bigrams(ours));
    let total: usize = r.values().sum();
    let hit: usize = r
        .iter()
        .map(|(k, n)| (*n).min(*o.get(k).unwrap_or(&0)))
        .sum();
    if total == 0 {
        1.0
    } else {
        hit as f64 / total as f64
    }
}

/// The marks pdftotext puts around right-to-left lines and runs (they
/// say how to display text, and are not text).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with Latin ligatures (ﬁ) and Arabic presentation forms (ﺍﻟ) as the
/// letters they stand for (their compatibility decomposition).
fn expand_ligatures(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\u{FB00}'..='\u{FB06}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
        {
            out.extend(std::iter::once(c).nfkc());
        } else {
            out.push(c);
        }
    }
    out
}

/// Extracts `name` page by page and compares with its `.pdftotext.txt`.
fn check(name: &str, password: Option<&str>, at_least: f64) {
    let reference =
        std::fs::read_to_string(support::data(&name.replace(".pdf", ".pdftotext.txt"))).unwrap();
    let reference: Vec<&str> = reference.split('\u{c}').collect();
    let doc = support::open(name, password);
    let out = support::process(&doc);
    assert!(
        out.errors.is_empty(),
        "{name}: page errors {:?}",
        out.errors
    );
    assert_eq!(
        out.pages.len() as u32,
        doc.page_count(),
        "{name}: one text per page"
    );
    let mut ours_all = String::new();
    let mut ref_all = String::new();
    for (i, (number, text)) in out.pages.iter().enumerate() {
        assert_eq!(*number as usize, i + 1, "{name}: pages in order");
        ours_all.push_str(text);
        ours_all.push('\n');
        ref_all.push_str(&expand_ligatures(reference.get(i).copied().unwrap_or("")));
        ref_all.push('\n');
    }
    let r = recall(&ref_all, &ours_all);
    eprintln!(
        "{name}: bigram recall {r:.4} over {} pages",
        out.pages.len()
    );
    assert!(
        r >= at_least,
        "{name}: bigram recall {r:.4} is below {at_least}"
    );
}

#[test]
fn english_pdftex_type1() {
    check("en-lppl.pdf", None, 0.98);
}

#[test]
fn english_xdvipdfmx_cid_truetype() {
    check("en-debian-faq.pdf", None, 0.98);
}

#[test]
fn japanese() {
    check("ja-maint-guide.pdf", None, 0.98);
}

#[test]
fn chinese_cid_fonts_without_tounicode() {
    check("zh-tlmgr-intro.pdf", None, 0.98);
}

#[test]
fn korean() {
    check("ko-ob-mathleading.pdf", None, 0.98);
}

#[test]
fn arabic() {
    check("ar-arabic-book.pdf", None, 0.95);
    check("ar-sexam-exam.pdf", None, 0.84);
}

#[test]
fn hebrew() {
    check("he-cjhebrew.pdf", None, 0.93);
}

#[test]
fn right_to_left_text_comes_out_in_reading_order() {
    let book = support::process(&support::open("ar-arabic-book.pdf", None));
    let title = &book.pages[0].1;
    assert!(title.starts_with("اللغة العربي"), "{title}");
    assert!(title.contains("محمد"), "{title}");
    // Presentation forms folded to letters, in order.
    let exam = support::process(&support::open("ar-sexam-exam.pdf", None));
    let first = &exam.pages[0].1;
    assert!(first.contains("الأول"), "{first}");
    assert!(
        !first
            .chars()
            .any(|c| ('\u{FE70}'..='\u{FEFF}').contains(&c)),
        "{first}"
    );
    let hebrew = support::process(&support::open("he-cjhebrew.pdf", None));
    assert!(hebrew.pages.iter().any(|(_, t)| t.contains("אבגד")));
}

#[test]
fn damaged_cross_reference_table_is_repaired() {
    check("damaged-badlin1.pdf", None, 0.98);
}

#[test]
fn lines_and_paragraphs_survive() {
    let doc = support::open("en-lppl.pdf", None);
    let out = support::process(&doc);
    let first = &out.pages[0].1;
    assert!(
        first.lines().count() > 20,
        "page 1 keeps its lines:\n{first}"
    );
    assert!(first.contains("\n\n"), "page 1 keeps paragraph breaks");
    assert!(
        first.starts_with("The LATEX Project Public License\n"),
        "{first}"
    );
}

#[test]
fn chinese_comes_out_readable() {
    let doc = support::open("zh-tlmgr-intro.pdf", None);
    let out = support::process(&doc);
    assert!(
        out.pages[0].1.contains("关于 tlmgr 使用方法的简介"),
        "{}",
        out.pages[0].1
    );
}

#[test]
fn korean_keeps_word_spaces() {
    let doc = support::open("ko-ob-mathleading.pdf", None);
    let out = support::process(&doc);
    assert!(
        out.pages[1]
            .1
            .contains("문서의 preamble에 패키지의 사용을 선언한다"),
        "{}",
        out.pages[1].1
    );
}
