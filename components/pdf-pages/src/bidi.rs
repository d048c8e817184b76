//! Right-to-left text: a line's glyphs, as they stand from left to right,
//! put into logical order by the Unicode bidirectional algorithm
//! (`unicode-bidi`), with Arabic presentation forms folded to the letters
//! they stand for.
//!
//! PDFs draw right-to-left scripts in visual order: read in drawing order,
//! "مرحبا بالعالم" comes out as "ملاعلاب ابحرم". Reordering the visual line
//! as if it were logical undoes that (the algorithm's reordering of a line
//! is its own inverse for the runs it reverses), with the line's direction
//! taken from the majority of its strongly directional letters.

use unicode_bidi::{BidiClass, BidiInfo, Level, bidi_class};

use crate::arabic_forms::FORMS;

/// Whether `c` belongs to a right-to-left script (Hebrew, Arabic, Syriac,
/// Thaana, N'Ko and the rest of U+0590..U+08FF, their presentation forms,
/// and the right-to-left blocks beyond the BMP).
pub(crate) fn is_rtl(c: char) -> bool {
    matches!(c, '\u{0590}'..='\u{08FF}' | '\u{FB1D}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}'
        | '\u{10800}'..='\u{10FFF}' | '\u{1E800}'..='\u{1EFFF}')
}

/// Whether `text` is only combining marks (Arabic harakat, Hebrew points,
/// accents): drawn after the letter they sit on, and kept with it.
pub(crate) fn is_mark(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| bidi_class(c) == BidiClass::NSM)
}

/// A line's text in visual order, built glyph by glyph from the left.
#[derive(Default)]
pub(crate) struct Visual {
    text: String,
    /// Where the last letter's text starts, if it was right to left.
    last_rtl: Option<usize>,
    /// The marks drawn after that letter so far, in the order drawn: put
    /// before it at once when the next letter comes (one at a time, a
    /// line of 10,000 marks moved all the ones before: 50 million bytes).
    marks: String,
}

impl Visual {
    /// Adds the text of the next glyph to the right, after a space if
    /// `spaced` (its gap is as wide as one). Marks come right after the
    /// letter they sit on.
    pub(crate) fn push(&mut self, glyph: &str, spaced: bool) {
        let mut own = String::with_capacity(glyph.len());
        fold(glyph, &mut own);
        if self.last_rtl.is_some() && is_mark(&own) {
            self.marks.push_str(&own);
            return;
        }
        self.place_marks();
        if spaced
            && !self.text.is_empty()
            && !self.text.ends_with(char::is_whitespace)
            && !own.starts_with(char::is_whitespace)
        {
            self.text.push(' ');
        }
        let start = self.text.len();
        let rtl = own.chars().any(is_rtl);
        if rtl && own.chars().nth(1).is_some() {
            // A glyph's own text is already logical (a lam-alef ligature is
            // "لا"): reversed here, the line's reordering puts it back.
            self.text.extend(own.chars().rev());
        } else {
            self.text.push_str(&own);
        }
        self.last_rtl = rtl.then_some(start);
    }

    /// Puts the marks on the last letter before it, reversed: after it
    /// once the line is reordered.
    fn place_marks(&mut self) {
        if let Some(letter) = self.last_rtl
            && !self.marks.is_empty()
        {
            let marks: String = self.marks.chars().rev().collect();
            self.text.insert_str(letter, &marks);
            self.marks.clear();
        }
    }

    /// The line in logical order.
    pub(crate) fn logical(mut self) -> String {
        self.place_marks();
        let (mut ltr, mut rtl) = (0usize, 0usize);
        for c in self.text.chars() {
            match bidi_class(c) {
                BidiClass::L => ltr += 1,
                BidiClass::R | BidiClass::AL => rtl += 1,
                _ => {}
            }
        }
        let level = if rtl >= ltr {
            Level::rtl()
        } else {
            Level::ltr()
        };
        let info = BidiInfo::new(&self.text, Some(level));
        info.paragraphs
            .iter()
            .map(|p| info.reorder_line(p, p.range.clone()))
            .collect()
    }
}

/// Appends `text` to `out` with every Arabic presentation form replaced by
/// the letters it stands for.
fn fold(text: &str, out: &mut String) {
    for c in text.chars() {
        if matches!(c, '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
            && let Ok(i) = FORMS.binary_search_by_key(&c, |&(form, _)| form)
        {
            out.push_str(FORMS[i].1);
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line whose glyphs, from the left, are `seen`'s characters, one
    /// glyph each, with a space's gap where it has a space.
    fn seen(seen: &str) -> String {
        let mut v = Visual::default();
        let mut spaced = false;
        for c in seen.chars() {
            if c == ' ' {
                spaced = true;
                continue;
            }
            v.push(c.encode_utf8(&mut [0; 4]), spaced);
            spaced = false;
        }
        v.logical()
    }

    #[test]
    fn arabic_drawn_in_visual_order_comes_out_logical() {
        assert_eq!(seen("ملاعلاب ابحرم"), "مرحبا بالعالم");
        assert_eq!(seen("םולש"), "שלום");
    }

    #[test]
    fn numbers_and_latin_inside_right_to_left_keep_their_order() {
        assert_eq!(seen("12 لصفلا"), "الفصل 12");
        assert_eq!(seen("ملاعلاب PDF ابحرم"), "مرحبا PDF بالعالم");
    }

    #[test]
    fn presentation_forms_and_ligatures_fold_to_letters() {
        // "سلام" in contextual forms, the lam-alef one ligature glyph; from
        // the left: final meem, lam-alef, initial seen.
        let mut v = Visual::default();
        for glyph in ["\u{FEE2}", "\u{FEFB}", "\u{FEB3}"] {
            v.push(glyph, false);
        }
        assert_eq!(v.logical(), "سلام");
    }

    #[test]
    fn marks_stay_on_their_letters() {
        // "بيّن": from the left noon, yeh, then beh; the shadda is drawn
        // right after the yeh it sits on.
        let mut v = Visual::default();
        for glyph in ["ن", "ي", "\u{0651}", "ب"] {
            v.push(glyph, false);
        }
        assert_eq!(v.logical(), "بي\u{0651}ن");
        // Two marks on one letter keep their order, and so do 10,000 on
        // the line's last letter.
        let mut v = Visual::default();
        for glyph in ["ن", "\u{064E}", "\u{0651}", "ب"] {
            v.push(glyph, false);
        }
        assert_eq!(v.logical(), "بن\u{064E}\u{0651}");
        let mut v = Visual::default();
        v.push("ب", false);
        for _ in 0..5_000 {
            v.push("\u{064E}", false);
            v.push("\u{0651}", false);
        }
        assert_eq!(
            v.logical(),
            format!("ب{}", "\u{064E}\u{0651}".repeat(5_000))
        );
    }

    #[test]
    fn left_to_right_lines_are_left_alone() {
        assert_eq!(seen("ab 12"), "ab 12");
        assert!(!"Hello, 世界".chars().any(is_rtl));
    }
}
