//! Hostile PDFs through the real `warmlane run`, with its memory and CPU
//! watched: decompression bombs in every kind of stream, forms that fan out
//! to 10^12 invocations, page trees that loop or lie, absurd CMaps, pages of
//! ten million operators or characters, deep nesting, a string of 400,000
//! bytes to escape, truncated and mis-indexed files, and encryption that is
//! not what it claims.
//!
//! The first half generates the files ([`cases`]), each a few bytes to a few
//! hundred KB, with what a correct result must hold: the good pages that
//! must come out with their text, and the page count when the document
//! opens. The second half runs each one as a child process under GNU time
//! (`/usr/bin/time`: peak RSS and user+system CPU of the whole process) and
//! checks every result is clear and bounded.
//!
//! `cargo test --test all hostile -- --nocapture` prints the figures;
//! `HOSTILE_CASES=NAME` runs only the cases whose name contains NAME,
//! `HOSTILE_CONFIG=FILE` runs them with `--config FILE`; the files
//! stay in `target/tmp/hostile-PID/` (the test prints where) to try by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lopdf::xref::XrefType;
use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId, Stream};

use crate::support;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// One hostile file and what a correct result holds.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) bytes: Vec<u8>,
    /// Pages that must come out with their text, and a substring of it.
    pub(crate) good: Vec<(u32, &'static str)>,
    /// The page count, where the document must open (exit 0 and every page
    /// reported, as text or as an error).
    pub(crate) pages: Option<u32>,
}

// ---------------------------------------------------------------------------
// zlib streams by hand
// ---------------------------------------------------------------------------

/// Bits written least significant first, as deflate packs them.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, count: u32) {
        debug_assert!(count <= 32);
        self.acc |= value << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: its most significant bit goes first.
    fn code(&mut self, code: u64, len: u32) {
        for i in (0..len).rev() {
            self.put((code >> i) & 1, 1);
        }
    }

    /// `count` zero bits, fast.
    fn zeros(&mut self, mut count: u64) {
        while self.n != 0 && count > 0 {
            self.put(0, 1);
            count -= 1;
        }
        let bytes = usize::try_from(count / 8).expect("fits");
        self.out.resize(self.out.len() + bytes, 0);
        self.put(0, (count % 8) as u32);
    }

    fn align(&mut self) {
        if self.n > 0 {
            self.put(0, 8 - self.n);
        }
    }
}

const ADLER: u64 = 65521;

/// A zlib stream that inflates to `prefix`, then `zeros` zero bytes, then
/// `suffix`, written without ever holding the zeros: the prefix and suffix
/// in stored blocks, the zeros in one dynamic-Huffman block whose only
/// codes are a literal zero, a 258-byte match at distance 1 (one bit for
/// its length, one for its distance) and the end of the block. Each match
/// is two zero bits, so the block is mostly zero bytes: 1032:1, zlib's own
/// best, and a second layer of deflate shrinks it another thousandfold.
fn zlib_zeros(prefix: &[u8], zeros: u64, suffix: &[u8]) -> Vec<u8> {
    let mut b = Bits::default();
    b.out.extend([0x78, 0x01]);
    let stored = |b: &mut Bits, data: &[u8], last: bool| {
        let mut chunks: Vec<&[u8]> = data.chunks(65535).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            b.put(u64::from(last && i + 1 == n), 1);
            b.put(0, 2);
            b.align();
            let len = chunk.len() as u16;
            b.out.extend(len.to_le_bytes());
            b.out.extend((!len).to_le_bytes());
            b.out.extend(chunk);
        }
    };
    if !prefix.is_empty() || (zeros == 0 && suffix.is_empty()) {
        stored(&mut b, prefix, zeros == 0 && suffix.is_empty());
    }
    if zeros > 0 {
        b.put(u64::from(suffix.is_empty()), 1);
        b.put(2, 2); // dynamic Huffman
        b.put(29, 5); // 286 literal/length codes
        b.put(0, 5); // 1 distance code
        b.put(14, 4); // 18 code-length codes
        // Code-length code lengths, in their odd order: 18 -> 2, 2 -> 1, 1 -> 2.
        for sym in [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1] {
            b.put(
                match sym {
                    18 | 1 => 2,
                    2 => 1,
                    _ => 0,
                },
                3,
            );
        }
        // Canonical code-length codes: 2 -> 0, 1 -> 10, 18 -> 11.
        let len2 = |b: &mut Bits| b.code(0b0, 1);
        let len1 = |b: &mut Bits| b.code(0b10, 2);
        let skip = |b: &mut Bits, n: u64| {
            b.code(0b11, 2);
            b.put(n - 11, 7);
        };
        len2(&mut b); // literal 0
        skip(&mut b, 138); // literals 1..=138
        skip(&mut b, 117); // literals 139..=255
        len2(&mut b); // end of block
        skip(&mut b, 28); // lengths 257..=284
        len1(&mut b); // length 285 (258 bytes)
        len1(&mut b); // distance 0 (distance 1)
        // Literal/length codes: 285 -> 0, literal 0 -> 10, end -> 11.
        b.code(0b10, 2);
        let matches = (zeros - 1) / 258;
        b.zeros(matches * 2);
        for _ in 0..(zeros - 1) % 258 {
            b.code(0b10, 2);
        }
        b.code(0b11, 2);
    }
    if !suffix.is_empty() {
        stored(&mut b, suffix, true);
    }
    b.align();
    let (mut a, mut s) = (1u64, 0u64);
    for &byte in prefix {
        a = (a + u64::from(byte)) % ADLER;
        s = (s + a) % ADLER;
    }
    s = (s + (zeros % ADLER) * a) % ADLER;
    for &byte in suffix {
        a = (a + u64::from(byte)) % ADLER;
        s = (s + a) % ADLER;
    }
    b.out.extend((((s << 16) | a) as u32).to_be_bytes());
    b.out
}

/// `data` deflated by lopdf (zlib, level 9); stored if it does not shrink.
fn zlib(data: &[u8]) -> Vec<u8> {
    let mut s = Stream::new(Dictionary::new(), data.to_vec());
    s.compress().expect("compress");
    if s.dict.has(b"Filter") {
        s.content
    } else {
        zlib_zeros(data, 0, b"")
    }
}

/// How a stream's data is written.
#[derive(Clone, Copy)]
enum Enc {
    Plain,
    Flate,
    /// The data, then this many zero bytes, deflated once.
    Bomb(u64),
    /// The data, then this many zero bytes, deflated twice.
    Nested(u64),
}

/// The `/Filter` entry and the bytes for `data` written as `enc`.
fn encode(data: &[u8], enc: Enc) -> (&'static str, Vec<u8>) {
    match enc {
        Enc::Plain => ("", data.to_vec()),
        Enc::Flate => ("/Filter /FlateDecode", zlib(data)),
        Enc::Bomb(n) => ("/Filter /FlateDecode", zlib_zeros(data, n, b"")),
        Enc::Nested(n) => (
            "/Filter [/FlateDecode /FlateDecode]",
            zlib(&zlib_zeros(data, n, b"")),
        ),
    }
}

/// `count` copies of units drawn from `units`, switching to a random one
/// about every `run` copies: text with just enough entropy to deflate at a
/// ratio under the host's 250:1 (a pure repetition deflates at 1000:1 and
/// would be stopped by the ratio limit before anything else is tested).
fn noisy(units: &[&[u8]], count: usize, run: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(count * units[0].len());
    let mut unit = 0;
    for _ in 0..count {
        if next() % run == 0 {
            unit = (next() % units.len() as u64) as usize;
        }
        out.extend_from_slice(units[unit]);
    }
    out
}

// ---------------------------------------------------------------------------
// PDFs by hand
// ---------------------------------------------------------------------------

/// A PDF written object by object, so that its structure can be anything.
struct Pdf {
    body: Vec<u8>,
    offsets: BTreeMap<u32, usize>,
    /// Objects inside object streams: number -> (stream, index).
    packed: BTreeMap<u32, (u32, u32)>,
}

impl Pdf {
    fn new() -> Pdf {
        Pdf {
            body: b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec(),
            offsets: BTreeMap::new(),
            packed: BTreeMap::new(),
        }
    }

    fn obj(&mut self, num: u32, text: impl AsRef<[u8]>) {
        self.offsets.insert(num, self.body.len());
        self.body
            .extend(format!("{num} 0 obj\n").as_bytes().iter().copied());
        self.body.extend_from_slice(text.as_ref());
        self.body.extend_from_slice(b"\nendobj\n");
    }

    /// A stream object: `dict` is what goes in its dictionary besides
    /// `/Length` and `/Filter`.
    fn stream(&mut self, num: u32, dict: &str, data: &[u8], enc: Enc) {
        let (filter, bytes) = encode(data, enc);
        let mut text =
            format!("<< /Length {} {filter} {dict} >>\nstream\n", bytes.len()).into_bytes();
        text.extend(bytes);
        text.extend_from_slice(b"\nendstream");
        self.obj(num, text);
    }

    /// An object stream `num` holding `members`.
    fn objstm(&mut self, num: u32, members: &[(u32, String)], enc: Enc) {
        let mut head = String::new();
        let mut body = String::new();
        for (i, (n, text)) in members.iter().enumerate() {
            write!(head, "{n} {} ", body.len()).unwrap();
            body.push_str(text);
            body.push('\n');
            self.packed.insert(*n, (num, i as u32));
        }
        let first = head.len();
        let data = head + &body;
        self.stream(
            num,
            &format!("/Type /ObjStm /N {} /First {first}", members.len()),
            data.as_bytes(),
            enc,
        );
    }

    fn size(&self) -> u32 {
        let last = self.offsets.keys().chain(self.packed.keys()).max();
        last.map_or(1, |n| n + 1)
    }

    /// The file with a classic cross-reference table; `trailer` is what goes
    /// in the trailer besides `/Size`.
    fn finish(mut self, trailer: &str) -> Vec<u8> {
        let start = self.body.len();
        let size = self.size();
        let mut xref = format!("xref\n0 {size}\n0000000000 65535 f \n");
        for n in 1..size {
            match self.offsets.get(&n) {
                Some(off) => writeln!(xref, "{off:010} 00000 n ").unwrap(),
                None => xref.push_str("0000000000 00000 f \n"),
            }
        }
        write!(
            xref,
            "trailer\n<< /Size {size} {trailer} >>\nstartxref\n{start}\n%%EOF\n"
        )
        .unwrap();
        self.body.extend(xref.into_bytes());
        self.body
    }

    /// The file with a cross-reference stream `num` (entries of widths
    /// 1 4 2), written as `enc`.
    fn finish_xref_stream(mut self, num: u32, trailer: &str, enc: Enc) -> Vec<u8> {
        let start = self.body.len();
        let size = self.size().max(num + 1);
        let mut entries = Vec::new();
        for n in 0..size {
            let (kind, field, index) = if n == num {
                (1u8, start as u32, 0u16)
            } else if let Some(&off) = self.offsets.get(&n) {
                (1, off as u32, 0)
            } else if let Some(&(stm, i)) = self.packed.get(&n) {
                (2, stm, i as u16)
            } else {
                (0, 0, if n == 0 { 65535 } else { 0 })
            };
            entries.push(kind);
            entries.extend(field.to_be_bytes());
            entries.extend(index.to_be_bytes());
        }
        self.stream(
            num,
            &format!("/Type /XRef /W [1 4 2] /Size {size} /Index [0 {size}] {trailer}"),
            &entries,
            enc,
        );
        // The stream is written where it was said to be.
        debug_assert_eq!(self.offsets[&num], start);
        self.body
            .extend(format!("startxref\n{start}\n%%EOF\n").into_bytes());
        self.body
    }
}

const HELVETICA: &str =
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";
const F1: &str = "/Font << /F1 3 0 R >>";

fn hello(page: u32) -> String {
    format!("BT /F1 12 Tf 72 720 Td (Hello page {page}) Tj ET\n")
}

fn page_dict(resources: &str, contents: &str) -> String {
    format!(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << {resources} >> /Contents {contents} >>"
    )
}

/// A document of simple pages: catalog 1, page tree 2, Helvetica 3, the
/// rest from 4 on.
struct Doc {
    pdf: Pdf,
    kids: Vec<u32>,
    next: u32,
}

impl Doc {
    fn new() -> Doc {
        Doc {
            pdf: Pdf::new(),
            kids: Vec::new(),
            next: 4,
        }
    }

    fn id(&mut self) -> u32 {
        self.next += 1;
        self.next - 1
    }

    /// A page reading "Hello page N", N its place in the document.
    fn good(&mut self) {
        let n = self.kids.len() as u32 + 1;
        let c = self.id();
        self.pdf.stream(c, "", hello(n).as_bytes(), Enc::Plain);
        self.page(F1, &format!("{c} 0 R"));
    }

    fn page(&mut self, resources: &str, contents: &str) -> u32 {
        self.page_raw(&page_dict(resources, contents))
    }

    fn page_raw(&mut self, dict: &str) -> u32 {
        let p = self.id();
        self.pdf.obj(p, dict);
        self.kids.push(p);
        p
    }

    /// A page with "Hello page N" and `more` content after it, in one stream
    /// written as `enc`.
    fn page_with(&mut self, resources: &str, more: &[u8], enc: Enc) -> u32 {
        let n = self.kids.len() as u32 + 1;
        let c = self.id();
        let mut data = hello(n).into_bytes();
        data.extend_from_slice(more);
        self.pdf.stream(c, "", &data, enc);
        self.page(resources, &format!("{c} 0 R"))
    }

    fn kids(&self) -> String {
        self.kids.iter().map(|k| format!("{k} 0 R ")).collect()
    }

    fn tree(&mut self, kids: &str, count: &str) {
        self.pdf.obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
        self.pdf.obj(
            2,
            format!("<< /Type /Pages /Kids [{kids}] /Count {count} >>"),
        );
        self.pdf.obj(3, HELVETICA);
    }

    fn finish(mut self) -> Vec<u8> {
        let kids = self.kids();
        let count = self.kids.len().to_string();
        self.tree(&kids, &count);
        self.pdf.finish("/Root 1 0 R")
    }
}

fn case(name: &'static str, bytes: Vec<u8>, good: &[u32], pages: Option<u32>) -> Case {
    const HELLO: [&str; 8] = [
        "Hello page 1",
        "Hello page 2",
        "Hello page 3",
        "Hello page 4",
        "Hello page 5",
        "Hello page 6",
        "Hello page 7",
        "Hello page 8",
    ];
    Case {
        name,
        bytes,
        good: good.iter().map(|&p| (p, HELLO[p as usize - 1])).collect(),
        pages,
    }
}

impl Case {
    /// One more page that must come out with `text`.
    fn also(mut self, page: u32, text: &'static str) -> Case {
        self.good.push((page, text));
        self
    }
}

/// good page, hostile page (its resources and extra content), good page.
fn sandwich(name: &'static str, build: impl FnOnce(&mut Doc)) -> Case {
    let mut d = Doc::new();
    d.good();
    build(&mut d);
    d.good();
    case(name, d.finish(), &[1, 3], Some(3))
}

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

/// The content of page 2 inflates to `zeros` NUL bytes (whitespace) after
/// its text.
fn content_bomb(name: &'static str, enc: Enc) -> Case {
    sandwich(name, |d| {
        d.page_with(F1, b"", enc);
    })
}

/// Page 2 uses font /F2 and draws its text with it; `font` writes the font
/// (and what it needs) as object `f` of `d`.
fn font_page(d: &mut Doc, font: impl FnOnce(&mut Doc, u32), text: &str) {
    let f = d.id();
    font(d, f);
    d.page_with(
        &format!("/Font << /F1 3 0 R /F2 {f} 0 R >>"),
        format!("BT /F2 12 Tf 72 700 Td {text} Tj ET\n").as_bytes(),
        Enc::Plain,
    );
}

/// A Type0 font, Identity-H, with `cmap` as its /ToUnicode written as `enc`
/// and `desc_extra` in its descendant font's dictionary.
fn type0_font(d: &mut Doc, f: u32, cmap: &[u8], enc: Enc, desc_extra: &str) {
    let tu = d.id();
    cid_font(d, f, &format!("/ToUnicode {tu} 0 R"), desc_extra, "");
    d.pdf.stream(tu, "", cmap, enc);
}

/// A Type0 font, Identity-H, with `font_extra` in its dictionary, over a
/// CIDFontType2 with `desc_extra` in its dictionary and `file` in its
/// descriptor.
fn cid_font(d: &mut Doc, f: u32, font_extra: &str, desc_extra: &str, file: &str) {
    let (desc, fd) = (d.id(), d.id());
    d.pdf.obj(
        f,
        format!(
            "<< /Type /Font /Subtype /Type0 /BaseFont /Hostile /Encoding /Identity-H /DescendantFonts [{desc} 0 R] {font_extra} >>"
        ),
    );
    d.pdf.obj(
        desc,
        format!(
            "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Hostile /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor {fd} 0 R /DW 500 {desc_extra} >>"
        ),
    );
    d.pdf.obj(fd, descriptor(file));
}

fn descriptor(file: &str) -> String {
    format!(
        "<< /Type /FontDescriptor /FontName /Hostile /Flags 4 /FontBBox [0 -200 1000 900] /ItalicAngle 0 /Ascent 800 /Descent -200 /CapHeight 700 /StemV 80 {file} >>"
    )
}

fn cmap(codespace: &str, body: &str) -> Vec<u8> {
    format!(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n/CMapName /Hostile-UCS def\n/CMapType 2 def\n1 begincodespacerange\n{codespace}\nendcodespacerange\n{body}endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    )
    .into_bytes()
}

/// "Hello CMap" as two-byte codes equal to their Unicode values.
const CMAP_TEXT: &str = "<00480065006C006C006F00200043004D00610070>";

/// A simple font whose program (`key`: FontFile, FontFile2) is a bomb.
fn font_program_bomb(name: &'static str, subtype: &str, key: &str, enc: Enc) -> Case {
    sandwich(name, |d| {
        font_page(
            d,
            |d, f| {
                let (fd, ff) = (d.id(), d.id());
                d.pdf.obj(
                    f,
                    format!(
                        "<< /Type /Font /Subtype /{subtype} /BaseFont /Hostile /FirstChar 32 /LastChar 126 /Widths [{}] /Encoding /WinAnsiEncoding /FontDescriptor {fd} 0 R >>",
                        "500 ".repeat(95)
                    ),
                );
                d.pdf.obj(fd, descriptor(&format!("/{key} {ff} 0 R")));
                let prefix: &[u8] = if key == "FontFile" {
                    b"%!PS-AdobeFont-1.0: Hostile 001.000\n/FontName /Hostile def\ncurrentfile eexec\n"
                } else {
                    b"\x00\x01\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00"
                };
                d.pdf
                    .stream(ff, "/Length1 1073741824 /Length2 0 /Length3 0", prefix, enc);
            },
            "(Bombed font text)",
        );
    })
}

fn image_bomb() -> Case {
    sandwich("image-bomb-nested-1g", |d| {
        let im = d.id();
        d.pdf.stream(
            im,
            "/Type /XObject /Subtype /Image /Width 32768 /Height 32768 /ColorSpace /DeviceGray /BitsPerComponent 8",
            b"",
            Enc::Nested(GIB),
        );
        d.page_with(
            &format!("{F1} /XObject << /Im1 {im} 0 R >>"),
            b"q 200 0 0 200 72 300 cm /Im1 Do Q\n",
            Enc::Plain,
        );
    })
}

fn form_bomb() -> Case {
    sandwich("form-bomb-nested-1g", |d| {
        let fm = d.id();
        d.pdf.stream(
            fm,
            &format!("/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << {F1} >>"),
            b"BT /F1 12 Tf 72 600 Td (form text) Tj ET\n",
            Enc::Nested(GIB),
        );
        d.page_with(
            &format!("{F1} /XObject << /Fm1 {fm} 0 R >>"),
            b"/Fm1 Do\n",
            Enc::Plain,
        );
    })
}

/// The catalog, the page tree and both pages live in an object stream that
/// inflates to 1 GiB (two layers of deflate); the fonts and contents are
/// plain objects. Nothing can be found: the result is an error.
fn objstm_bomb_pagetree() -> Case {
    let mut pdf = Pdf::new();
    pdf.obj(3, HELVETICA);
    pdf.stream(5, "", hello(1).as_bytes(), Enc::Plain);
    pdf.stream(7, "", hello(2).as_bytes(), Enc::Plain);
    let members = vec![
        (1, "<< /Type /Catalog /Pages 2 0 R >>".to_string()),
        (
            2,
            "<< /Type /Pages /Kids [4 0 R 6 0 R] /Count 2 >>".to_string(),
        ),
        (4, page_dict(F1, "5 0 R")),
        (6, page_dict(F1, "7 0 R")),
    ];
    pdf.objstm(10, &members, Enc::Nested(GIB));
    case(
        "objstm-bomb-pagetree-nested-1g",
        pdf.finish_xref_stream(11, "/Root 1 0 R", Enc::Flate),
        &[],
        None,
    )
}

/// Page 2's font lives in an object stream that inflates to 64 MiB; the
/// rest are plain objects, indexed by a cross-reference stream.
fn objstm_bomb_font() -> Case {
    let mut d = Doc::new();
    d.good();
    font_page(
        &mut d,
        |d, f| {
            let stm = d.id();
            d.pdf.objstm(
                stm,
                &[(f, HELVETICA.replace("Helvetica", "Courier"))],
                Enc::Bomb(64 * MIB),
            );
        },
        "(Courier text)",
    );
    d.good();
    let kids = d.kids();
    d.tree(&kids, "3");
    let x = d.id();
    let bytes = d.pdf.finish_xref_stream(x, "/Root 1 0 R", Enc::Flate);
    case("objstm-bomb-font-64m", bytes, &[1, 3], Some(3))
}

/// The cross-reference stream itself inflates to 1 GiB: its entries, then
/// zeros. A scan would find the three pages, but a limit passed by the
/// document's structure is an error for the document (as warmlane-pdf
/// documents): the file is refused, naming the limit.
fn xref_stream_bomb() -> Case {
    let mut d = Doc::new();
    for _ in 0..3 {
        d.good();
    }
    let kids = d.kids();
    d.tree(&kids, "3");
    let x = d.id();
    let bytes = d.pdf.finish_xref_stream(x, "/Root 1 0 R", Enc::Nested(GIB));
    case("xref-stream-bomb-nested-1g", bytes, &[], None)
}

/// One stream of 1 MiB (the size below which no ratio is checked: 1 KB of
/// deflate), listed 1,000 times in the contents of each of 30 pages: 30 GiB
/// to inflate, 1 GiB a page.
fn repeated_stream() -> Case {
    let mut d = Doc::new();
    d.good();
    let (s, arr) = (d.id(), d.id());
    let text = b"BT /F1 12 Tf 72 650 Td (repeated) Tj ET\n";
    d.pdf
        .stream(s, "", text, Enc::Bomb(MIB - text.len() as u64));
    d.pdf
        .obj(arr, format!("[{}]", format!("{s} 0 R ").repeat(1000)));
    for _ in 0..30 {
        d.page(F1, &format!("{arr} 0 R"));
    }
    d.good();
    let mut c = case(
        "one-1mib-stream-1000-times-on-30-pages",
        d.finish(),
        &[1],
        Some(32),
    );
    c.good.push((32, "Hello page 32"));
    c
}

/// Form X0 draws X1 ten times, X1 draws X2 ten times, … down to X12, which
/// shows a character: 10^12 invocations on each of pages 1-4; page 5 good.
fn fanout_forms() -> Case {
    let mut d = Doc::new();
    let levels = 12;
    let forms: Vec<u32> = (0..=levels).map(|_| d.id()).collect();
    for (i, &f) in forms.iter().enumerate() {
        let (resources, content) = if i == levels {
            (
                F1.to_string(),
                "BT /F1 12 Tf 72 100 Td (x) Tj ET".to_string(),
            )
        } else {
            (
                format!("/XObject << /X {} 0 R >>", forms[i + 1]),
                "q /X Do Q ".repeat(10),
            )
        };
        d.pdf.stream(
            f,
            &format!(
                "/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << {resources} >>"
            ),
            content.as_bytes(),
            Enc::Plain,
        );
    }
    let c = d.id();
    d.pdf.stream(c, "", b"/X0 Do\n", Enc::Plain);
    for _ in 0..4 {
        d.page(
            &format!("/XObject << /X0 {} 0 R >>", forms[0]),
            &format!("{c} 0 R"),
        );
    }
    d.good();
    case(
        "fanout-forms-10x12-levels-4-pages",
        d.finish(),
        &[5],
        Some(5),
    )
}

/// Four pages: "Hello page 1", then a page whose forms fan out to 10^12
/// invocations (it runs for as long as it is let), then pages 3 and 4.
pub(crate) fn spinning_pdf() -> Vec<u8> {
    let mut d = Doc::new();
    d.good();
    let levels = 12;
    let forms: Vec<u32> = (0..=levels).map(|_| d.id()).collect();
    for (i, &f) in forms.iter().enumerate() {
        let (resources, content) = if i == levels {
            (
                F1.to_string(),
                "BT /F1 12 Tf 72 100 Td (x) Tj ET".to_string(),
            )
        } else {
            (
                format!("/XObject << /X {} 0 R >>", forms[i + 1]),
                "q /X Do Q ".repeat(10),
            )
        };
        d.pdf.stream(
            f,
            &format!(
                "/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << {resources} >>"
            ),
            content.as_bytes(),
            Enc::Plain,
        );
    }
    let c = d.id();
    d.pdf.stream(c, "", b"/X0 Do\n", Enc::Plain);
    d.page(
        &format!("/XObject << /X0 {} 0 R >>", forms[0]),
        &format!("{c} 0 R"),
    );
    d.good();
    d.good();
    d.finish()
}

/// Page 2 draws a form of 10,000 'A's `draws` times: 10,000 × `draws`
/// characters of text from 1.5 KB of PDF.
fn text_form(name: &'static str, draws: usize) -> Case {
    sandwich(name, |d| {
        let fm = d.id();
        let line = format!("({}) Tj ", "A".repeat(1000));
        d.pdf.stream(
            fm,
            &format!("/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << {F1} >>"),
            format!("BT /F1 12 Tf 72 500 Td {} ET", line.repeat(10)).as_bytes(),
            Enc::Flate,
        );
        d.page_with(
            &format!("{F1} /XObject << /T {fm} 0 R >>"),
            "/T Do ".repeat(draws).as_bytes(),
            Enc::Flate,
        );
    })
}

/// `pages` pages, each drawing one form of 10,000 'A's `draws` times, then
/// a good page: every page within every limit, all of them together far
/// past the document's CPU budget if their text costs much to chunk.
fn text_form_pages(name: &'static str, pages: u32, draws: usize) -> Case {
    let mut d = Doc::new();
    let (fm, c) = (d.id(), d.id());
    let line = format!("({}) Tj ", "A".repeat(1000));
    d.pdf.stream(
        fm,
        &format!("/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << {F1} >>"),
        format!("BT /F1 12 Tf 72 500 Td {} ET", line.repeat(10)).as_bytes(),
        Enc::Flate,
    );
    d.pdf
        .stream(c, "", "/T Do ".repeat(draws).as_bytes(), Enc::Flate);
    for _ in 0..pages {
        d.page(
            &format!("{F1} /XObject << /T {fm} 0 R >>"),
            &format!("{c} 0 R"),
        );
    }
    d.good();
    let last = pages + 1;
    let mut case = case(name, d.finish(), &[], Some(last));
    case.good.push((
        last,
        Box::leak(format!("Hello page {last}").into_boxed_str()),
    ));
    case
}

/// Page trees: a kid that is an ancestor, a count that lies, kids that are
/// missing or not dictionaries, a parent that is itself, a DAG of 2^20
/// paths to one page, and a chain 20,000 nodes deep.
fn page_trees() -> Vec<Case> {
    let mut out = Vec::new();

    let mut d = Doc::new();
    d.good();
    let node = d.id();
    let p2 =
        d.page_raw(&page_dict(F1, "[]").replace("/Parent 2 0 R", &format!("/Parent {node} 0 R")));
    d.kids.pop();
    d.good();
    let kids = format!("{} 0 R {node} 0 R {} 0 R", d.kids[0], d.kids[1]);
    d.pdf.obj(
        node,
        format!("<< /Type /Pages /Parent 2 0 R /Kids [2 0 R {p2} 0 R {node} 0 R] /Count 1 >>"),
    );
    d.tree(&kids, "3");
    let mut c = case("pagetree-cycle", d.pdf.finish("/Root 1 0 R"), &[1], Some(3));
    c.good.push((3, "Hello page 2"));
    out.push(c);

    let mut d = Doc::new();
    d.good();
    d.good();
    let kids = d.kids();
    d.tree(&kids, "1000000");
    out.push(case(
        "pagetree-count-lies-1000000",
        d.pdf.finish("/Root 1 0 R"),
        &[1, 2],
        Some(2),
    ));

    // An inner node claiming 2^32 pages. The guest's `lopdf` reserved room
    // for what such nodes claim (5bc1a11); the batches the host writes
    // have one flat tree, so this checks the host's own reading of it.
    let mut d = Doc::new();
    d.good();
    d.good();
    let inner = d.id();
    let kids = d.kids();
    d.pdf.obj(
        inner,
        format!("<< /Type /Pages /Parent 2 0 R /Kids [{kids}] /Count 4294967296 >>"),
    );
    d.tree(&format!("{inner} 0 R"), "4294967296");
    out.push(case(
        "pagetree-inner-count-lies-2^32",
        d.pdf.finish("/Root 1 0 R"),
        &[1, 2],
        Some(2),
    ));

    let mut d = Doc::new();
    d.good();
    d.good();
    let int = d.id();
    d.pdf.obj(int, "42");
    let kids = format!("{} 99 0 R 98 0 R {int} 0 R null (string)", d.kids());
    d.tree(&kids, "6");
    out.push(case(
        "pagetree-kids-missing",
        d.pdf.finish("/Root 1 0 R"),
        &[1, 2],
        None,
    ));

    let mut d = Doc::new();
    d.good();
    let (p, c) = (d.next, d.next + 1);
    d.next += 2;
    d.pdf.stream(c, "", hello(2).as_bytes(), Enc::Plain);
    d.pdf.obj(
        p,
        page_dict(F1, &format!("{c} 0 R")).replace("/Parent 2 0 R", &format!("/Parent {p} 0 R")),
    );
    d.kids.push(p);
    d.good();
    let kids = d.kids();
    d.pdf.obj(1, "<< /Type /Catalog /Pages 2 0 R >>");
    d.pdf.obj(
        2,
        format!("<< /Type /Pages /Parent 2 0 R /Kids [{kids}] /Count 3 >>"),
    );
    d.pdf.obj(3, HELVETICA);
    out.push(case(
        "pagetree-parent-is-itself",
        d.pdf.finish("/Root 1 0 R"),
        &[1, 2, 3],
        Some(3),
    ));

    // Every node lists the next one twice: 2^20 paths to one page.
    let mut d = Doc::new();
    let nodes: Vec<u32> = (0..20).map(|_| d.id()).collect();
    let leaf = d.id();
    let c = d.id();
    for (i, &n) in nodes.iter().enumerate() {
        let next = nodes.get(i + 1).copied().unwrap_or(leaf);
        let parent = if i == 0 { 2 } else { nodes[i - 1] };
        d.pdf.obj(
            n,
            format!(
                "<< /Type /Pages /Parent {parent} 0 R /Kids [{next} 0 R {next} 0 R] /Count {} >>",
                1u64 << (20 - i)
            ),
        );
    }
    d.pdf.stream(c, "", hello(1).as_bytes(), Enc::Plain);
    d.pdf.obj(
        leaf,
        page_dict(F1, &format!("{c} 0 R"))
            .replace("/Parent 2 0 R", &format!("/Parent {} 0 R", nodes[19])),
    );
    d.tree(&format!("{} 0 R", nodes[0]), "1048576");
    out.push(case(
        "pagetree-dag-2^20-paths",
        d.pdf.finish("/Root 1 0 R"),
        &[1],
        Some(1),
    ));

    // A chain of 20,000 page-tree nodes, in an object stream, with a page at
    // the bottom, beside a good page at the top.
    let mut d = Doc::new();
    d.good();
    let depth = 20_000;
    let first = d.next;
    d.next += depth + 2;
    let (leaf, c, stm) = (first + depth, first + depth + 1, d.id());
    let mut members = Vec::new();
    for i in 0..depth {
        let parent = if i == 0 { 2 } else { first + i - 1 };
        members.push((
            first + i,
            format!(
                "<< /Type /Pages /Parent {parent} 0 R /Kids [{} 0 R] /Count 1 >>",
                first + i + 1
            ),
        ));
    }
    members.push((
        leaf,
        page_dict(F1, &format!("{c} 0 R"))
            .replace("/Parent 2 0 R", &format!("/Parent {} 0 R", leaf - 1)),
    ));
    d.pdf.objstm(stm, &members, Enc::Flate);
    d.pdf.stream(
        c,
        "",
        b"BT /F1 12 Tf 72 720 Td (Deep page) Tj ET",
        Enc::Plain,
    );
    d.tree(&format!("{} 0 R {first} 0 R", d.kids[0]), "2");
    let x = d.id();
    out.push(case(
        "pagetree-chain-20000-deep",
        d.pdf.finish_xref_stream(x, "/Root 1 0 R", Enc::Flate),
        &[1],
        None,
    ));
    out
}

/// 200,000 bfchar entries in one block (the limit is 100 a block), mapping
/// the codes of "Hello CMap" to themselves.
fn huge_tounicode() -> Case {
    sandwich("tounicode-200000-bfchar", |d| {
        let units: Vec<Vec<u8>> = "Hello CMap"
            .chars()
            .map(|ch| format!("<{:04X}> <{:04X}>\n", ch as u32, ch as u32).into_bytes())
            .collect();
        let units: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
        let entries = noisy(&units, 200_000, 1, 7);
        let body = format!(
            "200000 beginbfchar\n{}endbfchar\n",
            String::from_utf8(entries).unwrap()
        );
        font_page(
            d,
            |d, f| type0_font(d, f, &cmap("<0000> <FFFF>", &body), Enc::Flate, ""),
            CMAP_TEXT,
        );
    })
}

/// A ToUnicode map whose four ranges of 65,536 codes each map every code
/// to 1,000 bytes (500 CJK characters, 1,500 bytes of text): 390 MB of
/// text from 4 KB of map, until a target was cut at the format's 512
/// bytes and a map's text at 4 MB.
fn long_tounicode_targets() -> Case {
    sandwich("tounicode-targets-of-1000-bytes", |d| {
        let hello: String = "Hello CMap"
            .chars()
            .map(|ch| format!("<{:04X}> <{:04X}>\n", ch as u32, ch as u32))
            .collect();
        let target = "4E00".repeat(500);
        let ranges: String = (1..=4)
            .map(|k| format!("<{k:04X}0000> <{k:04X}FFFF> <{target}>\n"))
            .collect();
        let body =
            format!("10 beginbfchar\n{hello}endbfchar\n4 beginbfrange\n{ranges}endbfrange\n");
        font_page(
            d,
            |d, f| type0_font(d, f, &cmap("<0000> <FFFF>", &body), Enc::Flate, ""),
            CMAP_TEXT,
        );
    })
}

/// Page 2 selects a font given inline in its resources, with a ToUnicode
/// map of all 65,536 codes, 100,000 times before it shows its text: 1 MB
/// of content that loaded the font again at each selection (850 MB in
/// a native build) until fonts were known by their dictionary.
fn inline_font_selected() -> Case {
    sandwich("inline-font-selected-100000-times", |d| {
        let tu = d.id();
        let body = "1 beginbfrange\n<0000> <FFFF> <0000>\nendbfrange\n";
        d.pdf
            .stream(tu, "", &cmap("<0000> <FFFF>", body), Enc::Flate);
        let font = format!(
            "<< /Type /Font /Subtype /Type0 /BaseFont /Hostile /Encoding /Identity-H /ToUnicode {tu} 0 R /DescendantFonts [<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Hostile /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /DW 500 >>] >>"
        );
        let content = format!(
            "BT {}72 700 Td {CMAP_TEXT} Tj ET\n",
            "/F2 12 Tf ".repeat(100_000)
        );
        d.page_with(
            &format!("/Font << /F1 3 0 R /F2 {font} >>"),
            content.as_bytes(),
            Enc::Flate,
        );
    })
}

/// A CID font with no ToUnicode map, so its text comes from its embedded
/// TrueType program's `cmap`: a format 12 subtable whose first group maps
/// `A`-`Z` and whose 100,000 more each map the same 65,536 codes again:
/// 1.2 MB whose walk took 6.5 billion steps until a subtable's walk took
/// each code once (fuzzing run 39's slow input).
fn truetype_cmap_overlapping_groups() -> Case {
    sandwich("truetype-cmap-100000-overlapping-groups", |d| {
        font_page(
            d,
            |d, f| {
                let ff = d.id();
                cid_font(d, f, "", "", &format!("/FontFile2 {ff} 0 R"));
                let mut groups = vec![(0x41u32, 0x5Au32, 0x41u32)];
                groups.extend(std::iter::repeat_n((0x2_0000, 0x2_FFFF, 1), 100_000));
                // Unfiltered: Flate would pass `pdf.max_inflate_ratio`.
                d.pdf.stream(ff, "", &truetype_cmap_12(&groups), Enc::Plain);
            },
            "<00480045004C004C004F>",
        );
    })
}

/// 2,000 CID fonts with no ToUnicode map that embed one TrueType program,
/// whose `cmap` maps `A`-`Z` and then, group by group, 1,048,576 more
/// codes to the same glyphs. Each font walked them all again, until fonts
/// came to share a program's glyph text (fuzzing run 40's slow input: 40
/// fonts on one program, 3.3 s).
fn truetype_program_shared() -> Case {
    sandwich("truetype-program-shared-by-2000-fonts", |d| {
        let ff = d.id();
        let program = truetype_cmap_12(&hello_and_groups_to(1));
        d.pdf.stream(ff, "", &program, Enc::Plain);
        truetype_fonts_page(d, 2000, |_| ff);
    })
}

/// 500 CID fonts as in [`truetype_program_shared`], each with a program
/// of its own whose groups map 1,048,576 codes to the last 536 glyph ids:
/// a million steps a font until a walk skipped the glyphs that had their
/// code (and glyph ids past 65,535, which wrapped around). Each walk
/// still sets up a table of every glyph id (512 KiB): 2,000 such fonts
/// take page 2 past its CPU budget.
fn truetype_programs_of_their_own() -> Case {
    sandwich("truetype-programs-of-500-fonts-each-its-own", |d| {
        let program = truetype_cmap_12(&hello_and_groups_to(65_000));
        truetype_fonts_page(d, 500, |d| {
            let ff = d.id();
            d.pdf.stream(ff, "", &program, Enc::Plain);
            ff
        });
    })
}

/// Format 12 groups: `A`-`Z` to their own glyph ids, then 16 groups of
/// 65,536 codes each (planes 1 to 16) from glyph `gid`.
fn hello_and_groups_to(gid: u32) -> Vec<(u32, u32, u32)> {
    let mut groups = vec![(0x41, 0x5A, 0x41)];
    groups.extend((1..=16).map(|plane| (plane << 16, (plane << 16) | 0xFFFF, gid)));
    groups
}

/// Page 2 shows `HELLO` in each of `n` CID fonts with no ToUnicode map,
/// whose text comes from the TrueType program `program` gives (a stream
/// of `d`).
fn truetype_fonts_page(d: &mut Doc, n: usize, mut program: impl FnMut(&mut Doc) -> u32) {
    let (mut names, mut content) = (String::new(), String::from("BT 72 700 Td "));
    for i in 0..n {
        let (f, ff) = (d.id(), program(d));
        cid_font(d, f, "", "", &format!("/FontFile2 {ff} 0 R"));
        names += &format!("/G{i} {f} 0 R ");
        content += &format!("/G{i} 12 Tf <00480045004C004C004F> Tj ");
    }
    content += "ET\n";
    d.page_with(
        &format!("/Font << /F1 3 0 R {names}>>"),
        content.as_bytes(),
        Enc::Flate,
    );
}

/// Page 2's 20 lines of Arabic each hold one letter and 9,999 marks
/// (fatha), drawn left to right: the last glyph a line may hold. Placing
/// each mark by its letter searched the line from the mark, 50 million
/// steps a line, until one pass found every mark's letter; and the host
/// panicked cutting the page's text into pieces for the chunker, inside
/// a two-byte character.
fn rtl_marks() -> Case {
    sandwich("rtl-20-lines-of-a-letter-and-9999-marks", |d| {
        let f = d.id();
        let body = "2 beginbfchar\n<0001> <0628>\n<0002> <064E>\nendbfchar\n";
        type0_font(d, f, &cmap("<0000> <FFFF>", body), Enc::Plain, "");
        let mut content = String::new();
        for line in 0..20 {
            let y = 680 - line * 20;
            content += &format!(
                "BT /F2 12 Tf 72 {y} Td <0001{}> Tj ET\n",
                "0002".repeat(9_999)
            );
        }
        d.page_with(
            &format!("/Font << /F1 3 0 R /F2 {f} 0 R >>"),
            content.as_bytes(),
            Enc::Plain,
        );
    })
}

/// A TrueType program with one table, `cmap`, of one (3,10) subtable of
/// format 12 with `groups` (start code, end code, first glyph id).
fn truetype_cmap_12(groups: &[(u32, u32, u32)]) -> Vec<u8> {
    let mut sub = vec![0, 12, 0, 0];
    for n in [16 + 12 * groups.len() as u32, 0, groups.len() as u32] {
        sub.extend_from_slice(&n.to_be_bytes());
    }
    for &(start, end, gid) in groups {
        for n in [start, end, gid] {
            sub.extend_from_slice(&n.to_be_bytes());
        }
    }
    let mut cmap = vec![0, 0, 0, 1, 0, 3, 0, 10, 0, 0, 0, 12];
    cmap.extend(sub);
    let mut font = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    font.extend_from_slice(b"cmap\0\0\0\0");
    font.extend_from_slice(&28u32.to_be_bytes());
    font.extend_from_slice(&(cmap.len() as u32).to_be_bytes());
    font.extend(cmap);
    font
}

fn absurd_cmap() -> Case {
    sandwich("tounicode-absurd-ranges", |d| {
        let body = "4 beginbfrange\n<0000> <FFFFFFFF> <0041>\n<00000000> <FFFFFFFF> <0041>\n<0000> <FFFF> [<0041> <0042>]\n<FFFF> <0000> <0041>\nendbfrange\n2 begincidrange\n<00000000> <FFFFFFFF> 0\n<0000> <FFFF> 4294967295\nendcidrange\n";
        font_page(
            d,
            |d, f| {
                type0_font(
                    d,
                    f,
                    &cmap("<00> <FFFFFFFF>\n<00000000> <FFFFFFFF>", body),
                    Enc::Flate,
                    "",
                )
            },
            CMAP_TEXT,
        );
    })
}

/// A CID font whose /W gives 4,096 ranges of 65,536 CIDs each at one
/// width: 268 million widths from 97 KB, if a reader expanded them.
fn cid_width_ranges() -> Case {
    sandwich("cid-widths-4096-ranges-of-65536", |d| {
        let w: String = (0..4096u64)
            .map(|i| format!("{} {} 500\n", i << 16, (i << 16) | 0xFFFF))
            .collect();
        let body = "1 beginbfrange\n<0000> <00FF> <0000>\nendbfrange\n";
        font_page(
            d,
            |d, f| {
                type0_font(
                    d,
                    f,
                    &cmap("<0000> <FFFF>", body),
                    Enc::Flate,
                    &format!("/W [{w}]"),
                )
            },
            CMAP_TEXT,
        );
    })
}

fn tounicode_bomb() -> Case {
    sandwich("tounicode-bomb-nested-1g", |d| {
        let body = "1 beginbfchar\n<0048> <0048>\nendbfchar\n";
        font_page(
            d,
            |d, f| type0_font(d, f, &cmap("<0000> <FFFF>", body), Enc::Nested(GIB), ""),
            CMAP_TEXT,
        );
    })
}

/// Ten million path operators on page 2: "n" and "h" in random runs, 20 MB
/// that deflate under the ratio limit (200 KB), so that only the stream
/// size, the parser's memory or the operator count can stop them.
fn ten_million_operators() -> Case {
    sandwich("ten-million-operators", |d| {
        let ops = noisy(&[b"n\n", b"h\n"], 10_000_000, 40, 11);
        d.page_with(F1, &ops, Enc::Flate);
    })
}

/// The plain form of the same: "0 0 m " ten million times, 60 MB that
/// deflate to 60 KB.
fn ten_million_moves() -> Case {
    sandwich("ten-million-moves-plain", |d| {
        d.page_with(F1, "0 0 m ".repeat(10_000_000).as_bytes(), Enc::Flate);
    })
}

/// Ten million characters written out: 10,000 shows of 1,000 'A's.
fn ten_million_chars() -> Case {
    sandwich("ten-million-chars-flat", |d| {
        let line = format!("({}) Tj\n", "A".repeat(1000));
        d.page_with(
            F1,
            format!("BT /F1 12 Tf 72 500 Td {} ET", line.repeat(10_000)).as_bytes(),
            Enc::Flate,
        );
    })
}

/// Objects nested 100,000 deep: an array and a dictionary reached from
/// page 2's resources, and an array in its content.
fn deep_nesting() -> Vec<Case> {
    let depth = 100_000;
    let deep_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let deep_dict = format!("{}{}", "<< /A ".repeat(depth), ">>".repeat(depth));
    let mut out = Vec::new();
    out.push(sandwich("deep-array-object-100000", |d| {
        let o = d.id();
        d.pdf.obj(o, &deep_array);
        d.page_with(
            &format!("{F1} /Properties << /P {o} 0 R >>"),
            b"/OC /P BDC EMC\n",
            Enc::Plain,
        );
    }));
    out.push(objstm_resource("deep-dict-in-objstm-100000", deep_dict));
    out.push(objstm_resource(
        "deep-array-in-objstm-100000",
        deep_array.clone(),
    ));
    out.push(sandwich("deep-array-content-100000", |d| {
        d.page_with(
            F1,
            format!("BT {deep_array} TJ ET\n").as_bytes(),
            Enc::Flate,
        );
    }));
    out.push(sandwich("deep-inline-dict-content-100000", |d| {
        let dict = format!("{}{}", "<< /A ".repeat(depth), ">>".repeat(depth));
        d.page_with(F1, format!("/Tag {dict} BDC EMC\n").as_bytes(), Enc::Flate);
    }));
    out.push(sandwich("deep-parentheses-in-a-string-100000", |d| {
        let nested = format!("{}{}", "(".repeat(depth), ")".repeat(depth));
        d.page_with(
            F1,
            format!("BT /F1 12 Tf 72 600 Td ({nested}) Tj ET\n").as_bytes(),
            Enc::Flate,
        );
    }));
    // Every one of these pages reads normally: the nesting is refused or
    // skipped without losing the page.
    out.into_iter().map(|c| c.also(2, "Hello page 2")).collect()
}

/// A 2,000,000-element array in an object stream, reached from page 2's
/// resources.
fn huge_array() -> Case {
    array_of(2_000_000)
}

/// An array of `n` small integers in an object stream, reached from page
/// 2's resources: `2n` bytes to inflate (under pdf.max_stream_mib up to 16
/// million), many times that once parsed.
fn array_of(n: usize) -> Case {
    let elements = noisy(&[b"0 ", b"1 "], n, 48, 5);
    let text = format!("[{}]", String::from_utf8(elements).unwrap());
    let name = format!("array-{n}-elements-in-objstm");
    objstm_resource(Box::leak(name.into_boxed_str()), text)
}

/// Ten million operands before one operator: "0 " and "1 " in random
/// runs, then "m".
fn ten_million_operands() -> Case {
    sandwich("ten-million-operands-one-operator", |d| {
        let mut ops = noisy(&[b"0 ", b"1 "], 10_000_000, 48, 13);
        ops.extend_from_slice(b"m\n");
        d.page_with(F1, &ops, Enc::Flate);
    })
}

/// A form that draws itself, and one that draws its own parent.
fn form_draws_itself() -> Case {
    sandwich("form-draws-itself", |d| {
        let (a, b) = (d.id(), d.id());
        for (f, other) in [(a, b), (b, a)] {
            d.pdf.stream(
                f,
                &format!(
                    "/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << {F1} /XObject << /Me {f} 0 R /Other {other} 0 R >> >>"
                ),
                b"BT /F1 12 Tf 72 600 Td (again) Tj ET /Me Do /Other Do\n",
                Enc::Plain,
            );
        }
        d.page_with(
            &format!("{F1} /XObject << /A {a} 0 R >>"),
            b"/A Do\n",
            Enc::Plain,
        );
    })
}

/// A Type 3 font whose glyph draws text in the same font.
fn type3_recursive() -> Case {
    sandwich("type3-glyph-uses-its-own-font", |d| {
        let (font, glyph) = (d.id(), d.id());
        d.pdf.stream(
            glyph,
            "",
            b"1000 0 0 0 1000 1000 d1 BT /T3 1 Tf (AAAA) Tj ET\n",
            Enc::Plain,
        );
        d.pdf.obj(
            font,
            format!(
                "<< /Type /Font /Subtype /Type3 /FontBBox [0 0 1000 1000] /FontMatrix [0.001 0 0 0.001 0 0] /CharProcs << /A {glyph} 0 R >> /Encoding << /Type /Encoding /Differences [65 /A] >> /FirstChar 65 /LastChar 65 /Widths [1000] /Resources << /Font << /T3 {font} 0 R >> >> >>"
            ),
        );
        d.page_with(
            &format!("/Font << /F1 3 0 R /T3 {font} 0 R >>"),
            b"BT /T3 12 Tf 72 600 Td (AAAA) Tj ET\n",
            Enc::Plain,
        );
    })
}

/// Object `text` in an object stream, reached from page 2's resources
/// (a marked-content property list the page uses).
fn objstm_resource(name: &'static str, text: String) -> Case {
    let mut d = Doc::new();
    d.good();
    let (obj, stm) = (d.id(), d.id());
    d.pdf.objstm(stm, &[(obj, text)], Enc::Flate);
    d.page_with(
        &format!("{F1} /Properties << /P {obj} 0 R >>"),
        b"/OC /P BDC EMC\n",
        Enc::Plain,
    );
    d.good();
    let kids = d.kids();
    d.tree(&kids, "3");
    let x = d.id();
    let bytes = d.pdf.finish_xref_stream(x, "/Root 1 0 R", Enc::Flate);
    case(name, bytes, &[1, 3], Some(3))
}

/// Content that refers to itself: /Contents through references that loop,
/// and a /Length that is a reference loop.
fn reference_loops() -> Case {
    sandwich("reference-loops", |d| {
        let (a, b, len, len2, c) = (d.id(), d.id(), d.id(), d.id(), d.id());
        d.pdf.obj(a, format!("{b} 0 R"));
        d.pdf.obj(b, format!("{a} 0 R"));
        d.pdf.obj(len, format!("{len2} 0 R"));
        d.pdf.obj(len2, format!("{len} 0 R"));
        let data = hello(2);
        d.pdf.obj(
            c,
            format!("<< /Length {len} 0 R >>\nstream\n{data}\nendstream"),
        );
        d.page(F1, &format!("[{a} 0 R {c} 0 R]"));
    })
}

fn length_lies() -> Case {
    sandwich("stream-length-lies", |d| {
        let c = d.id();
        d.pdf.obj(
            c,
            format!("<< /Length 2147483647 >>\nstream\n{}\nendstream", hello(2)),
        );
        d.page(F1, &format!("{c} 0 R"));
    })
}

/// Page 2's resources hold a literal string of 400,000 backslashes (each
/// written `\\`). `lopdf`'s writer escapes such a string in n² steps, so
/// cutting the page into a batch took 17 s of CPU, until batches began to
/// write these strings as hexadecimal (0.04 s); fuzzing found it (an 88 KB
/// file, 10 s).
fn escaped_string() -> Case {
    sandwich("escaped-string-400k", |d| {
        let title = "\\\\".repeat(400_000);
        let resources = format!("{F1} /Properties << /P << /Title ({title}) >> >>");
        d.page_with(&resources, b"", Enc::Plain);
    })
}

/// en-lppl.pdf rewritten by lopdf with a classic table and no object
/// streams.
fn lppl_classic() -> Vec<u8> {
    let mut doc = lppl_doc();
    save(&mut doc)
}

fn lppl_doc() -> Document {
    let bytes = std::fs::read(support::data("en-lppl.pdf")).expect("read en-lppl.pdf");
    Document::load_mem_with_options(&bytes, LoadOptions::default()).expect("lopdf reads it")
}

fn save(doc: &mut Document) -> Vec<u8> {
    doc.reference_table.cross_reference_type = XrefType::CrossReferenceTable;
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

const LPPL: [(u32, &str); 8] = [
    (1, "Project Public License"),
    (2, "electronic components"),
    (3, "Derived Work"),
    (4, "conditions above are not intended"),
    (5, "author-maintained"),
    (6, "previously unreachable"),
    (7, "How to Use This License"),
    (8, "Important Recommendations"),
];

/// en-lppl.pdf with a hostile page made by `content` inserted before page
/// `at`: the eight real pages must all still come out.
fn lppl_with_page(name: &'static str, at: u32, content: Stream) -> Case {
    let mut doc = lppl_doc();
    let before = doc.page_iter().nth(at as usize - 1).unwrap();
    let parent = doc
        .get_dictionary(before)
        .unwrap()
        .get(b"Parent")
        .unwrap()
        .as_reference()
        .unwrap();
    let font = doc.add_object(Object::Dictionary(
        Document::load_mem_with_options(&Doc::new().finish(), LoadOptions::default())
            .unwrap()
            .get_dictionary((3, 0))
            .unwrap()
            .clone(),
    ));
    let content = doc.add_object(Object::Stream(content));
    let mut fonts = Dictionary::new();
    fonts.set("F1", Object::Reference(font));
    let mut resources = Dictionary::new();
    resources.set("Font", Object::Dictionary(fonts));
    let mut page = Dictionary::new();
    page.set("Type", Object::Name(b"Page".to_vec()));
    page.set("Parent", Object::Reference(parent));
    page.set(
        "MediaBox",
        Object::Array([0, 0, 612, 792].map(Object::Integer).to_vec()),
    );
    page.set("Resources", Object::Dictionary(resources));
    page.set("Contents", Object::Reference(content));
    let page = doc.add_object(Object::Dictionary(page));
    let kids = doc
        .get_dictionary_mut(parent)
        .unwrap()
        .get_mut(b"Kids")
        .unwrap()
        .as_array_mut()
        .unwrap();
    let pos = kids
        .iter()
        .position(|k| k.as_reference().ok() == Some(before))
        .unwrap();
    kids.insert(pos, Object::Reference(page));
    let mut node: Option<ObjectId> = Some(parent);
    while let Some(id) = node {
        let dict = doc.get_dictionary_mut(id).unwrap();
        let count = dict.get(b"Count").unwrap().as_i64().unwrap();
        dict.set("Count", Object::Integer(count + 1));
        node = dict.get(b"Parent").and_then(Object::as_reference).ok();
    }
    let good = LPPL
        .iter()
        .map(|&(p, s)| (if p >= at { p + 1 } else { p }, s))
        .collect();
    Case {
        name,
        bytes: save(&mut doc),
        good,
        pages: Some(9),
    }
}

fn bomb_stream(prefix: &[u8], enc: Enc) -> Stream {
    let (filter, bytes) = encode(prefix, enc);
    let mut dict = Dictionary::new();
    if filter.contains('[') {
        dict.set(
            "Filter",
            Object::Array(vec![Object::Name(b"FlateDecode".to_vec()); 2]),
        );
    } else if !filter.is_empty() {
        dict.set("Filter", Object::Name(b"FlateDecode".to_vec()));
    }
    Stream::new(dict, bytes)
}

/// Truncated and mis-indexed copies of en-lppl.pdf.
fn damaged_lppl() -> Vec<Case> {
    let original = std::fs::read(support::data("en-lppl.pdf")).unwrap();
    let classic = lppl_classic();
    let mut out = Vec::new();
    out.push(Case {
        name: "lppl-rewritten-classic",
        bytes: classic.clone(),
        good: LPPL.to_vec(),
        pages: Some(8),
    });
    // The original keeps its page objects in an object stream at the very
    // end: cut at two thirds, no page object is left, only contents.
    out.push(Case {
        name: "lppl-truncated-2/3",
        bytes: original[..original.len() * 2 / 3].to_vec(),
        good: vec![],
        pages: None,
    });
    out.push(Case {
        name: "lppl-classic-truncated-2/3",
        bytes: classic[..classic.len() * 2 / 3].to_vec(),
        good: vec![LPPL[0]],
        pages: None,
    });
    // Cut inside the contents of the fifth page object in the file (lopdf
    // writes objects by number, each page beside its content): the pages
    // before it keep their text.
    let fifth = find_nth(&classic, b"/Type/Page/", 5).unwrap();
    out.push(Case {
        name: "lppl-classic-cut-at-the-fifth-page",
        bytes: classic[..fifth + 200].to_vec(),
        good: LPPL[..4].to_vec(),
        pages: None,
    });
    // The cross-reference stream (object 71, to the end) overwritten.
    let at = find(&original, b"71 0 obj").unwrap();
    let end = find(&original, b"startxref").unwrap();
    let mut garbage = original.clone();
    garbage[at..end]
        .copy_from_slice(&noisy(&[b"\x8f", b"7", b"\xff", b" 0 R"], end - at, 1, 3)[..end - at]);
    out.push(Case {
        name: "lppl-xref-stream-garbage",
        bytes: garbage,
        good: LPPL.to_vec(),
        pages: Some(8),
    });
    // The classic table overwritten, the trailer kept.
    let at = rfind(&classic, b"\nxref\n").unwrap() + 1;
    let end = rfind(&classic, b"trailer").unwrap();
    let mut garbage = classic.clone();
    garbage[at..end].copy_from_slice(
        &noisy(&[b"0000000001 00000 n \n", b"x", b"\0"], end - at, 3, 9)[..end - at],
    );
    out.push(Case {
        name: "lppl-classic-xref-garbage",
        bytes: garbage,
        good: LPPL.to_vec(),
        pages: Some(8),
    });
    // Every offset in the table 7 bytes off.
    let mut shifted = classic.clone();
    let table = rfind(&shifted, b"\nxref\n").unwrap();
    let text = String::from_utf8_lossy(&shifted[table..]).into_owned();
    let fixed: String = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if l.len() == 19 && f.len() == 4 && f[2] == "n" {
                format!("{:010} {} n \n", f[0].parse::<u64>().unwrap() + 7, f[1])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    shifted.truncate(table);
    shifted.extend(fixed.into_bytes());
    out.push(Case {
        name: "lppl-classic-offsets-off-by-7",
        bytes: shifted,
        good: LPPL.to_vec(),
        pages: Some(8),
    });
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_nth(hay: &[u8], needle: &[u8], n: usize) -> Option<usize> {
    let mut at = 0;
    for _ in 0..n {
        at += find(&hay[at..], needle)? + 1;
    }
    Some(at - 1)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// Trailers that lie: /Encrypt pointing at an integer, at nothing, at a
/// dictionary of an unknown handler; a /Prev that points at itself.
fn trailer_lies() -> Vec<Case> {
    let mut out = Vec::new();
    for (name, trailer, extra) in [
        ("encrypt-is-an-integer", "/Encrypt 9 0 R", Some("42")),
        ("encrypt-is-missing", "/Encrypt 99 0 R", None),
        (
            "encrypt-unknown-handler",
            "/Encrypt 9 0 R /ID [<00> <00>]",
            Some("<< /Filter /NoSuchHandler /V 99 /R 99 /Length 1000000 /O (x) /U (y) /P -1 >>"),
        ),
    ] {
        let mut d = Doc::new();
        d.good();
        d.good();
        d.next = 10;
        if let Some(text) = extra {
            d.pdf.obj(9, text);
        }
        let kids = d.kids();
        d.tree(&kids, "2");
        out.push(case(
            name,
            d.pdf.finish(&format!("/Root 1 0 R {trailer}")),
            &[],
            None,
        ));
    }
    // /Prev pointing at this very table.
    let mut d = Doc::new();
    d.good();
    d.good();
    let kids = d.kids();
    d.tree(&kids, "2");
    let start = d.pdf.body.len();
    let bytes = d.pdf.finish(&format!("/Root 1 0 R /Prev {start}"));
    out.push(case("xref-prev-is-itself", bytes, &[1, 2], Some(2)));
    // An object stream that the cross-reference stream says is inside itself.
    let mut pdf = Pdf::new();
    pdf.obj(3, HELVETICA);
    pdf.stream(5, "", hello(1).as_bytes(), Enc::Plain);
    pdf.objstm(
        10,
        &[
            (1, "<< /Type /Catalog /Pages 2 0 R >>".to_string()),
            (2, "<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_string()),
            (4, page_dict(F1, "5 0 R")),
        ],
        Enc::Flate,
    );
    pdf.offsets.remove(&10);
    pdf.packed.insert(10, (10, 0));
    out.push(case(
        "objstm-inside-itself",
        pdf.finish_xref_stream(11, "/Root 1 0 R", Enc::Flate),
        &[],
        None,
    ));
    out.push(case("empty-file", Vec::new(), &[], None));
    out.push(case("header-only", b"%PDF-1.7\n".to_vec(), &[], None));
    out
}

/// Every case, in the order they are run.
pub(crate) fn cases() -> Vec<Case> {
    let mut out = vec![
        // The slowest first, so that the other runner gets through the rest
        // meanwhile.
        text_form_pages("seven-million-chars-on-each-of-8-pages", 8, 700),
        text_form("ten-million-chars-by-form", 1000),
        // A big honest page, 1 MB of words of 10,000 letters, some 300
        // times a dense page's text: it reaches the chunker within its share
        // of the document's parsing budget (350 ms, or 528 ms when page 1's
        // retry has been reported before page 2's starts) even on a busy
        // machine. Measured with a fuzzer busy on the other core, it takes
        // 60-90 ms to parse; 3.5 MB took 300-450 ms, so at that size whether
        // it fitted came down to which retry finished first, and it failed
        // CI twice (at 7 MB and at 3.5 MB).
        text_form("a-million-chars-by-form", 100).also(2, "AAAAAAAAAA"),
        content_bomb("content-bomb-64m", Enc::Bomb(64 * MIB)),
        content_bomb("content-bomb-256m", Enc::Bomb(256 * MIB)),
        content_bomb("content-bomb-nested-1g", Enc::Nested(GIB)),
        content_bomb(
            "content-bomb-nested-4g-plus-1k",
            Enc::Nested(4 * GIB + 1024),
        ),
        objstm_bomb_pagetree(),
        objstm_bomb_font(),
        xref_stream_bomb(),
        form_bomb(),
        font_program_bomb(
            "type1-fontfile-bomb-nested-1g",
            "Type1",
            "FontFile",
            Enc::Nested(GIB),
        )
        .also(2, "Bombed font text"),
        font_program_bomb(
            "truetype-fontfile2-bomb-64m",
            "TrueType",
            "FontFile2",
            Enc::Bomb(64 * MIB),
        )
        .also(2, "Bombed font text"),
        tounicode_bomb(),
        cid_width_ranges().also(2, "Hello CMap"),
        image_bomb().also(2, "Hello page 2"),
        repeated_stream(),
        lppl_with_page(
            "lppl-plus-content-bomb-page",
            4,
            bomb_stream(b"BT /F1 12 Tf 72 720 Td (bomb) Tj ET\n", Enc::Nested(GIB)),
        ),
        fanout_forms(),
        form_draws_itself(),
        type3_recursive(),
        huge_tounicode().also(2, "Hello CMap"),
        long_tounicode_targets().also(2, "Hello CMap"),
        inline_font_selected().also(2, "Hello CMap"),
        truetype_cmap_overlapping_groups().also(2, "HELLO"),
        truetype_program_shared().also(2, "HELLOHELLO"),
        truetype_programs_of_their_own().also(2, "HELLOHELLO"),
        rtl_marks().also(2, "Hello page 2"),
        // What the absurd ranges map the codes to is garbage by definition.
        absurd_cmap().also(2, "Hello page 2"),
        // 20 MB of content: whether page 2 is read depends on
        // pdf.max_stream_mib (and the parser's memory, which caps it).
        ten_million_operators(),
        ten_million_moves(),
        ten_million_operands(),
        ten_million_chars(),
        text_form("twenty-million-chars-by-form", 2000),
        huge_array().also(2, "Hello page 2"),
        array_of(4_000_000),
        array_of(15_000_000),
        reference_loops().also(2, "Hello page 2"),
        length_lies().also(2, "Hello page 2"),
        escaped_string().also(2, "Hello page 2"),
    ];
    out.extend(page_trees());
    out.extend(deep_nesting());
    out.extend(damaged_lppl());
    out.extend(trailer_lies());
    out
}

// ---------------------------------------------------------------------------
// Running them
// ---------------------------------------------------------------------------

const TIME: &str = "/usr/bin/time";
/// A run that takes longer is killed and fails.
const WALL_LIMIT: Duration = Duration::from_secs(120);
/// Peak resident memory of the whole `warmlane run` process.
const RSS_LIMIT_MB: f64 = 300.0;
/// User + system CPU of the whole `warmlane run` process (host in debug
/// build, guests in release). Measured on 2 cores: nearly every case takes
/// under 0.4 s; the fan-out forms use up the document's CPU budget
/// (pipeline.cpu_ms_per_document 0.5 s and cpu_ms_per_page 250 ms, then
/// retries) in 3 s, and a 7 MB page of text takes 7 s to chunk. A document
/// whose work is bounded by its budget stays well under this; one whose
/// work grows with its pages (the 8 pages of 7 MB: 51 s) does not.
const CPU_LIMIT_S: f64 = 10.0;

/// What one run did.
struct Run {
    name: &'static str,
    size: usize,
    exit: Option<i32>,
    signal_note: String,
    rss_mb: f64,
    cpu_s: f64,
    wall_s: f64,
    texts: BTreeMap<u32, String>,
    errors: BTreeMap<u32, Vec<String>>,
    chunks: usize,
    stderr: String,
    problems: Vec<String>,
}

fn run_case(case: &Case, dir: &Path) -> Run {
    let stem = case.name.replace(['/', '^'], "_");
    let pdf = dir.join(format!("{stem}.pdf"));
    std::fs::write(&pdf, &case.bytes).unwrap();
    let (out_path, err_path, time_path) = (
        dir.join(format!("{stem}.out")),
        dir.join(format!("{stem}.err")),
        dir.join(format!("{stem}.time")),
    );
    let start = Instant::now();
    let mut child = Command::new(TIME)
        .arg("-f")
        .arg("%M %U %S")
        .arg("-o")
        .arg(&time_path)
        .arg(env!("CARGO_BIN_EXE_warmlane"))
        .args(["run", "--quiet", "--pages"])
        .args(config_args())
        .arg(&pdf)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("start /usr/bin/time");
    let mut problems = Vec::new();
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > WALL_LIMIT {
            // Kill warmlane, time's child, so that time still reports what it
            // used; then the whole group, should anything be left.
            let pid = child.id();
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            let kill = |target: &str| {
                let _ = Command::new("kill")
                    .args(["-s", "KILL", "--", target])
                    .stderr(Stdio::null())
                    .status();
            };
            for grandchild in children.split_whitespace() {
                kill(grandchild);
            }
            let grace = Instant::now();
            while child.try_wait().unwrap().is_none() && grace.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            kill(&format!("-{pid}"));
            let _ = child.wait();
            killed = true;
            problems.push(format!("still running after {WALL_LIMIT:?}: killed"));
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall_s = start.elapsed().as_secs_f64();
    let timing = std::fs::read_to_string(&time_path).unwrap_or_default();
    let (mut rss_mb, mut cpu_s) = (f64::NAN, f64::NAN);
    let mut signal_note = String::new();
    for line in timing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [m, u, s] = f[..]
            && let (Ok(m), Ok(u), Ok(s)) = (m.parse::<f64>(), u.parse::<f64>(), s.parse::<f64>())
        {
            rss_mb = m * 1024.0 / 1e6;
            cpu_s = u + s;
        } else if line.contains("signal") {
            signal_note = line.trim().to_string();
        }
    }
    let exit = status.and_then(|s| s.code());
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_else(|e| {
        problems.push(format!("stdout is not UTF-8: {e}"));
        String::new()
    });
    let stderr = String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned();
    let (mut texts, mut errors, mut chunks) = (BTreeMap::new(), BTreeMap::new(), 0);
    // A run that was killed may have been cut in the middle of a line.
    let complete = match stdout.rfind('\n') {
        Some(end) if killed => &stdout[..=end],
        _ => &stdout[..],
    };
    for line in complete.lines() {
        let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else {
            problems.push(format!("stdout line is not JSON: {:.80}", line));
            continue;
        };
        if r["doc"] != pdf.to_str().unwrap() {
            problems.push(format!("record for another doc: {:.80}", line));
        }
        if r.get("chunk").is_some() {
            chunks += 1;
        } else if let Some(page) = r["page"].as_u64() {
            let page = page as u32;
            // A page's text may be followed by errors of its own (chunking
            // that failed from some byte of it on): several are allowed.
            let dup = if let Some(e) = r["error"].as_str() {
                errors
                    .entry(page)
                    .or_insert_with(Vec::new)
                    .push(e.to_string());
                false
            } else if let Some(t) = r["text"].as_str() {
                texts.insert(page, t.to_string()).is_some()
            } else {
                problems.push(format!("page record without text or error: {:.80}", line));
                false
            };
            if dup {
                problems.push(format!("page {page} reported twice"));
            }
        } else {
            problems.push(format!("unknown record: {:.80}", line));
        }
    }

    // A clear result: exit 0 with nothing on stderr (--quiet), or 1 with
    // one line naming the file and why, and no records.
    match exit {
        Some(0) if !stderr.trim().is_empty() => {
            problems.push(format!("exit 0 but stderr says: {}", first_line(&stderr)));
        }
        Some(0) => {}
        Some(1) => {
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let prefix = format!("warmlane: {}: ", pdf.display());
            if lines.len() != 1 || !lines[0].starts_with(&prefix) || lines[0].len() <= prefix.len()
            {
                problems.push(format!(
                    "exit 1 without exactly one `warmlane: FILE: reason` line on stderr: {stderr:.300}"
                ));
            }
            if !stdout.is_empty() {
                problems.push("exit 1 (document refused) yet records on stdout".into());
            }
            if stderr.contains("panicked") {
                problems.push("panicked".into());
            }
        }
        Some(code) => problems.push(format!(
            "exit code {code} {signal_note}: {}",
            first_line(&stderr)
        )),
        None if status.is_some() => problems.push(format!(
            "killed by a signal {signal_note}: {}",
            first_line(&stderr)
        )),
        None => {}
    }
    // NaN (no figures: time itself was killed) fails too.
    if rss_mb.is_nan() || rss_mb >= RSS_LIMIT_MB {
        problems.push(format!("peak RSS {rss_mb:.0} MB (limit {RSS_LIMIT_MB} MB)"));
    }
    if cpu_s.is_nan() || cpu_s >= CPU_LIMIT_S {
        problems.push(format!("CPU {cpu_s:.1} s (limit {CPU_LIMIT_S} s)"));
    }
    for &(page, want) in &case.good {
        match (texts.get(&page), errors.get(&page)) {
            (Some(text), _) if text.contains(want) => {}
            (Some(text), _) => problems.push(format!(
                "good page {page} lacks {want:?}: {:.80}",
                text.replace('\n', " ")
            )),
            (None, Some(e)) => problems.push(format!("good page {page} lost: {}", e[0])),
            (None, None) => problems.push(format!("good page {page} missing")),
        }
    }
    if let Some(n) = case.pages {
        if exit != Some(0) {
            problems.push(format!("the document should open ({n} pages)"));
        }
        let seen: BTreeSet<u32> = texts.keys().chain(errors.keys()).copied().collect();
        let seen: Vec<u32> = seen.into_iter().collect();
        if seen != (1..=n).collect::<Vec<_>>() {
            problems.push(format!("pages reported {seen:?}, expected 1..={n}"));
        }
    }
    Run {
        name: case.name,
        size: case.bytes.len(),
        exit,
        signal_note,
        rss_mb,
        cpu_s,
        wall_s,
        texts,
        errors,
        chunks,
        stderr,
        problems,
    }
}

/// `--config FILE` when `HOSTILE_CONFIG` names one (to run the
/// cases under other limits), else nothing.
fn config_args() -> Vec<std::ffi::OsString> {
    match std::env::var_os("HOSTILE_CONFIG") {
        Some(file) => vec!["--config".into(), file],
        None => Vec::new(),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

fn check_time_is_installed() {
    let ok = Command::new(TIME)
        .args(["-f", "%M", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "GNU time is needed at {TIME} to measure each run's peak memory and CPU: apt-get install time"
    );
}

fn selected() -> Vec<Case> {
    let filter = std::env::var("HOSTILE_CASES").unwrap_or_default();
    cases()
        .into_iter()
        .filter(|c| c.name.contains(filter.as_str()))
        .collect()
}

#[test]
fn every_hostile_file_ends_in_a_clear_result_within_bounds() {
    check_time_is_installed();
    let made = Instant::now();
    let cases = selected();
    let made = made.elapsed();
    let dir = support::scratch("hostile");
    // One honest run first, so that no case pays for compiling the
    // components into the cache (2.5 s of CPU and 250 MB the first time).
    let warm = Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["run", "--quiet"])
        .arg(support::data("en-lppl.pdf"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(warm.success(), "warmlane run en-lppl.pdf: {warm}");
    let next = AtomicUsize::new(0);
    let runs = Mutex::new(Vec::new());
    let started = Instant::now();
    // Two at a time: the machines this runs on may have two cores.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let run = run_case(case, &dir);
                    runs.lock().unwrap().push((i, run));
                }
            });
        }
    });
    let mut runs = runs.into_inner().unwrap();
    runs.sort_by_key(|(i, _)| *i);
    let mut table = format!(
        "\n{} hostile files (made in {:.1} s, run in {:.1} s; files in {})\nok/lost/e: pages with text / pages with only errors / error records\n{:<40} {:>8} {:>4} {:>7} {:>6} {:>6} {:>10} {:>6}  first error\n",
        runs.len(),
        made.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        dir.display(),
        "case",
        "bytes",
        "exit",
        "RSS MB",
        "CPU s",
        "wall s",
        "ok/lost/e",
        "chunks",
    );
    for (_, r) in &runs {
        // The document's error without the file's path, or the first
        // page error.
        let first_error = if r.exit == Some(1) {
            let line = first_line(&r.stderr);
            line.split_once(".pdf: ")
                .map_or(line, |(_, why)| why)
                .to_string()
        } else {
            r.errors
                .values()
                .next()
                .map(|e| e[0].clone())
                .unwrap_or_default()
        };
        let lost = r.errors.keys().filter(|p| !r.texts.contains_key(p)).count();
        let records: usize = r.errors.values().map(Vec::len).sum();
        writeln!(
            table,
            "{:<40} {:>8} {:>4} {:>7.0} {:>6.2} {:>6.2} {:>10} {:>6}  {:.110}",
            r.name,
            r.size,
            r.exit.map_or_else(|| "-".to_string(), |c| c.to_string()),
            r.rss_mb,
            r.cpu_s,
            r.wall_s,
            format!("{}/{lost}/{records}", r.texts.len()),
            r.chunks,
            first_error,
        )
        .unwrap();
    }
    eprintln!("{table}");
    let failures: Vec<String> = runs
        .iter()
        .filter(|(_, r)| !r.problems.is_empty())
        .map(|(_, r)| {
            format!(
                "{}{}: {}",
                r.name,
                if r.signal_note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.signal_note)
                },
                r.problems.join("; ")
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} hostile files went wrong (files in {}):\n{}",
        failures.len(),
        runs.len(),
        dir.display(),
        failures.join("\n")
    );
}

#[test]
fn the_hand_made_zlib_streams_inflate_to_what_they_say() {
    // lopdf's bounded decoder is the reference.
    for (prefix, zeros, suffix) in [
        (&b""[..], 0u64, &b""[..]),
        (b"abc", 0, b""),
        (b"", 1, b""),
        (b"", 258, b""),
        (b"", 259, b"x"),
        (b"BT ET", 1_000_000, b"end"),
    ] {
        let mut want = prefix.to_vec();
        want.resize(want.len() + zeros as usize, 0);
        want.extend_from_slice(suffix);
        let flate = || Object::Name(b"FlateDecode".to_vec());
        let mut once = Dictionary::new();
        once.set("Filter", flate());
        let s = Stream::new(once, zlib_zeros(prefix, zeros, suffix));
        assert_eq!(s.decompressed_content_with_limit(1 << 30).unwrap(), want);
        let mut twice = Dictionary::new();
        twice.set("Filter", Object::Array(vec![flate(), flate()]));
        let s = Stream::new(twice, zlib(&zlib_zeros(prefix, zeros, suffix)));
        assert_eq!(s.decompressed_content_with_limit(1 << 30).unwrap(), want);
    }
    // A gibibyte of zeros is a megabyte of deflate, and a kilobyte of two.
    let (_, once) = encode(b"", Enc::Bomb(GIB));
    let (_, twice) = encode(b"", Enc::Nested(GIB));
    assert!(once.len() < 1_100_000, "{}", once.len());
    assert!(twice.len() < 4_000, "{}", twice.len());
}

/// Time to a job's first chunk line and to its end, read from its NDJSON
/// stream as the server sends it; and the records it sent.
fn follow(addr: &str, job: &str, since: Instant) -> (Duration, Duration, Vec<serde_json::Value>) {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET /v1/jobs/{job}/chunks HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = None;
    let mut records = Vec::new();
    for line in BufReader::new(s).lines() {
        let Ok(line) = line else { break };
        let Ok(record) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        first.get_or_insert_with(|| since.elapsed());
        records.push(record);
    }
    (first.expect("a first record"), since.elapsed(), records)
}

#[test]
fn a_good_document_beside_hostile_ones_finishes_as_if_alone() {
    let server = crate::serve::Serve::start("");
    server.wait_ready();
    let good = std::fs::read(support::data("en-debian-faq.pdf")).unwrap();
    let submit = |bytes: &[u8]| -> String {
        let r = server.post("/v1/documents", "application/pdf", bytes);
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        r.json()["job"].as_str().unwrap().to_string()
    };
    let run_good = || {
        let since = Instant::now();
        let job = submit(&good);
        let (first, done, records) = follow(&server.addr, &job, since);
        let state = server.wait_done(&job);
        assert_eq!(state["pages_done"], 73, "{state}");
        (first, done, records)
    };
    // Alone (the best of three).
    let alone = (0..3).map(|_| run_good()).min_by_key(|r| r.1).unwrap();
    assert!(alone.2.iter().all(|r| r.get("error").is_none()));
    let hostile = |names: &[&str]| -> Vec<Case> {
        cases()
            .into_iter()
            .filter(|c| names.iter().any(|n| c.name.starts_with(n)))
            .collect()
    };
    // One hostile document per core, already running when it arrives: its
    // first chunk waits at most for the batches in flight (the job with the
    // least CPU so far goes first), then it runs as if alone.
    let pair = hostile(&["fanout-forms", "seven-million-chars-on-each"]);
    assert_eq!(pair.len(), 2);
    let mut hostile_jobs: Vec<String> = pair.iter().map(|c| submit(&c.bytes)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let two = run_good();
    // It did not wait for them: both were still being worked on when it was
    // done (whatever else the machine was doing, the order holds). Times
    // are figures here, not limits.
    for job in &hostile_jobs {
        let state = server.get(&format!("/v1/jobs/{job}")).json();
        assert_eq!(state["state"], "running", "{state}");
    }
    // Six at once, sent just before it: each delays it by one batch at most.
    let six = hostile(&[
        "fanout-forms",
        "seven-million-chars",
        "ten-million-chars-by-form",
        "content-bomb-256m",
        "one-1mib-stream",
        "array-4000000",
    ]);
    assert_eq!(six.len(), 6);
    hostile_jobs.extend(six.iter().map(|c| submit(&c.bytes)));
    let many = run_good();
    for (n, beside) in [(2, &two), (6, &many)] {
        // The same records, byte for byte: nothing lost, nothing changed.
        assert_eq!(beside.2, alone.2);
        eprintln!(
            "good document (73 pages): alone first chunk {:?}, done {:?}; beside {n} hostile files: first chunk {:?}, done {:?}",
            alone.0, alone.1, beside.0, beside.1
        );
    }
    // And the hostile ones end too, each in a clear state.
    for job in &hostile_jobs {
        let state = server.wait_done(job);
        assert!(state["pages_done"] == state["pages"], "{job}: {state}");
    }
}
