//! The limits on reading a PDF — how far its streams may inflate, how long a
//! page's text may be, how much work a page may ask for — and the one
//! bounded way to decode a stream. The host reads documents under them and
//! hands them to the page parser inside every batch (a `/WarmlaneLimits`
//! dictionary in the batch's trailer), so both sides of the sandbox enforce
//! the same configured numbers.
//!
//! Every stream decoded by warmlane goes through [`Inflater::decode`]: lopdf's
//! unbounded helpers (`decompressed_content`, `decompress`, …) are
//! `disallowed-methods` in both workspaces' `clippy.toml`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use lopdf::{Dictionary, Object, Stream};
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

/// Outputs up to this size are never refused for their ratio: small streams
/// of repeated bytes (a blank line, a run of zeros) compress very well.
pub const RATIO_FLOOR: usize = 1 << 20;

/// The trailer key under which a batch carries its limits.
pub const TRAILER_KEY: &[u8] = b"WarmlaneLimits";

const MIB: u64 = 1024 * 1024;

/// How far reading one PDF may go. Each limit names the configuration key
/// that sets it (under `[pdf]`) in the errors it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest size one stream may decode to (`max_stream_mib`).
    pub stream_bytes: u64,
    /// Largest ratio of a stream's decoded size to its encoded size, for
    /// outputs above [`RATIO_FLOOR`] (`max_inflate_ratio`).
    pub ratio: u64,
    /// Largest size all streams decoded for one document together may reach,
    /// counting a stream again each time it is decoded again
    /// (`max_document_inflate_mib`). The parser applies it to its batch.
    pub total_bytes: u64,
    /// Longest text one page may have, in UTF-8 bytes (`max_page_text_mib`).
    pub page_text_bytes: u64,
    /// Most content-stream operators one page may run, counting each
    /// operator of a form again each time the form is drawn
    /// (`max_page_operators`).
    pub page_operators: u64,
    /// Largest batch the host builds, counting the objects its pages reach
    /// in memory (`max_batch_mib`). The host's alone: not sent to parsers.
    pub batch_bytes: u64,
    /// Most pages a document may have (`max_pages`). The host's alone.
    pub max_pages: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            stream_bytes: 32 * MIB,
            ratio: 250,
            total_bytes: 1024 * MIB,
            page_text_bytes: 16 * MIB,
            page_operators: 20_000_000,
            batch_bytes: 16 * MIB,
            max_pages: 100_000,
        }
    }
}

const KEYS: [&[u8]; 5] = [
    b"StreamBytes",
    b"Ratio",
    b"TotalBytes",
    b"PageTextBytes",
    b"PageOperators",
];

impl Limits {
    fn values(&self) -> [u64; 5] {
        [
            self.stream_bytes,
            self.ratio,
            self.total_bytes,
            self.page_text_bytes,
            self.page_operators,
        ]
    }

    /// Each limit the lesser of this one's and `cap`'s.
    pub fn at_most(self, cap: Limits) -> Limits {
        Limits {
            stream_bytes: self.stream_bytes.min(cap.stream_bytes),
            ratio: self.ratio.min(cap.ratio),
            total_bytes: self.total_bytes.min(cap.total_bytes),
            page_text_bytes: self.page_text_bytes.min(cap.page_text_bytes),
            page_operators: self.page_operators.min(cap.page_operators),
            batch_bytes: self.batch_bytes.min(cap.batch_bytes),
            max_pages: self.max_pages.min(cap.max_pages),
        }
    }

    /// The limits a parser applies, as the dictionary a batch's trailer
    /// carries.
    pub fn to_dict(&self) -> Dictionary {
        let mut dict = Dictionary::new();
        for (key, value) in KEYS.iter().zip(self.values()) {
            dict.set(*key, Object::Integer(value.min(i64::MAX as u64) as i64));
        }
        dict
    }

    /// The limits a batch's trailer carries; what is missing or not a
    /// positive integer keeps its default, and so do the host's own.
    pub fn from_trailer(trailer: &Dictionary) -> Limits {
        let mut limits = Limits::default();
        let Ok(dict) = trailer.get(TRAILER_KEY).and_then(Object::as_dict) else {
            return limits;
        };
        let read = |key: &[u8]| {
            dict.get(key)
                .and_then(Object::as_i64)
                .ok()
                .filter(|&n| n > 0)
                .map(|n| n as u64)
        };
        let fields: [&mut u64; 5] = [
            &mut limits.stream_bytes,
            &mut limits.ratio,
            &mut limits.total_bytes,
            &mut limits.page_text_bytes,
            &mut limits.page_operators,
        ];
        for (key, field) in KEYS.iter().zip(fields) {
            if let Some(n) = read(key) {
                *field = n;
            }
        }
        limits
    }
}

/// Why a stream was not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Decoding it would pass one of the [`Limits`]; says which.
    Limit(String),
    /// The stream is damaged or uses a filter that is not supported.
    Damaged(String),
}

impl DecodeError {
    /// Whether a limit, rather than damage, stopped the decoding.
    pub fn is_limit(&self) -> bool {
        matches!(self, DecodeError::Limit(_))
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Limit(why) | DecodeError::Damaged(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes streams under [`Limits`], keeping the running total of what one
/// document (or batch) has decoded. Shared by the threads reading it.
#[derive(Debug)]
pub struct Inflater {
    limits: Limits,
    used: AtomicU64,
}

impl Inflater {
    /// An inflater that has decoded nothing yet.
    pub fn new(limits: Limits) -> Inflater {
        Inflater {
            limits,
            used: AtomicU64::new(0),
        }
    }

    /// The limits it applies.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes decoded so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// `stream`'s content with its filters applied, or why not. An
    /// unfiltered stream is returned as it is: it holds no more than the
    /// bytes already read, so no limit applies to it.
    pub fn decode(&self, stream: &Stream) -> Result<Vec<u8>, DecodeError> {
        match stream.filters() {
            Ok(filters) if !filters.is_empty() => {}
            _ => return Ok(stream.content.clone()),
        }
        let l = &self.limits;
        let encoded = stream.content.len() as u64;
        let Caps {
            by_ratio,
            left,
            max,
        } = self.caps(encoded);
        let cap = usize::try_from(max).unwrap_or(usize::MAX);
        let decoded = if is_plain_flate(stream) {
            flate_like_lopdf(&stream.content, cap)
        } else {
            stream.decompressed_content_with_limit(cap)
        };
        match decoded {
            Ok(bytes) => {
                self.used.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Ok(bytes)
            }
            Err(lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded {
                ..
            })) => {
                // What was decoded before the limit still cost the work.
                self.used.fetch_add(max, Ordering::Relaxed);
                Err(DecodeError::Limit(if max == l.stream_bytes {
                    format!(
                        "a stream inflates past {} (pdf.max_stream_mib; for the page parser at most an eighth of pipeline.memory_mib)",
                        mib(l.stream_bytes)
                    )
                } else if max == left && left < by_ratio {
                    format!(
                        "the streams of this document together inflate past pdf.max_document_inflate_mib ({})",
                        mib(l.total_bytes)
                    )
                } else {
                    format!(
                        "a stream of {encoded} bytes inflates past pdf.max_inflate_ratio ({}×) of its size",
                        l.ratio
                    )
                }))
            }
            Err(e) => {
                // lopdf keeps nothing of a stream whose last filter fails
                // (Flate, then ASCIIHex on what is not hex), so how much
                // its first ones decoded is not known: as much as they may.
                // Else such a stream named again and again never meets the
                // document's total (fuzzing run 40's slow input).
                self.used.fetch_add(max, Ordering::Relaxed);
                Err(DecodeError::Damaged(format!(
                    "a stream cannot be decoded: {e}"
                )))
            }
        }
    }

    /// The first `max` bytes of `stream`'s content, decoded, for a reader
    /// that needs only its start (a Type 1 font program's clear text):
    /// only that much is inflated, and counted against the document's
    /// total. Only a stream whose one filter is FlateDecode without
    /// parameters can be read this way; `None` for any other, or one that
    /// does not decode.
    pub fn decode_prefix(&self, stream: &Stream, max: u64) -> Option<Vec<u8>> {
        if !is_plain_flate(stream) {
            return None;
        }
        let left = self.limits.total_bytes.saturating_sub(self.used());
        let limit = usize::try_from(max.min(left)).unwrap_or(usize::MAX);
        let out = inflate(&stream.content, true, limit);
        if !out.deflate {
            return None;
        }
        self.used
            .fetch_add(out.bytes.len() as u64, Ordering::Relaxed);
        Some(out.bytes)
    }

    /// All of `stream`'s content, decoded, when it is one plain Flate
    /// stream that ends cleanly in at most `max` bytes and within every
    /// limit [`Inflater::decode`] applies (counted against the total);
    /// `None` for any other stream, which its reader then decodes as usual,
    /// meeting the same limits or damage it would have met. For a writer
    /// that ships small streams already decoded (the host's batches).
    pub fn decode_whole(&self, stream: &Stream, max: u64) -> Option<Vec<u8>> {
        if !is_plain_flate(stream) {
            return None;
        }
        let cap = max.min(self.caps(stream.content.len() as u64).max);
        let out = inflate(
            &stream.content,
            true,
            usize::try_from(cap).unwrap_or(usize::MAX),
        );
        if !out.ended {
            return None;
        }
        self.used
            .fetch_add(out.bytes.len() as u64, Ordering::Relaxed);
        Some(out.bytes)
    }

    /// What a stream of `encoded` bytes may decode to now.
    fn caps(&self, encoded: u64) -> Caps {
        let l = &self.limits;
        let by_ratio = encoded.saturating_mul(l.ratio).max(RATIO_FLOOR as u64);
        let left = l.total_bytes.saturating_sub(self.used());
        Caps {
            by_ratio,
            left,
            max: l.stream_bytes.min(by_ratio).min(left),
        }
    }
}

/// The bounds on one stream's decoded size, and the one that applies.
struct Caps {
    /// By [`Limits::ratio`].
    by_ratio: u64,
    /// What the document's total leaves.
    left: u64,
    /// The least of those and [`Limits::stream_bytes`].
    max: u64,
}

/// Whether `stream`'s one filter is FlateDecode, without parameters (no
/// predictor): the streams [`inflate`] decodes itself.
fn is_plain_flate(stream: &Stream) -> bool {
    matches!(stream.filters().as_deref(), Ok([b"FlateDecode"]))
        && matches!(stream.dict.get(b"DecodeParms"), Err(_) | Ok(Object::Null))
}

/// lopdf's FlateDecode, on this thread's reused inflate state: zlib; when
/// that fails before any byte came out, raw deflate after the two header
/// bytes (a damaged header); what came out before an error is kept. More
/// than `cap` bytes is refused as lopdf refuses it.
fn flate_like_lopdf(input: &[u8], cap: usize) -> lopdf::Result<Vec<u8>> {
    let limit = cap.saturating_add(1);
    let Inflated {
        mut bytes, deflate, ..
    } = inflate(input, true, limit);
    if !deflate && bytes.is_empty() && input.len() > 2 {
        // As lopdf: the raw retry's own failure keeps what it decoded.
        bytes = inflate(&input[2..], false, limit).bytes;
    }
    if bytes.len() > cap {
        return Err(lopdf::DecompressError::MemoryLimitExceeded { limit: cap }.into());
    }
    Ok(bytes)
}

thread_local! {
    /// One inflate state per thread, reset for each stream: a new state
    /// costs more than inflating a small stream (a font's `/ToUnicode`),
    /// and a page has several.
    static STATE: RefCell<Option<Box<DecompressorOxide>>> = const { RefCell::new(None) };
}

/// Inflates `input` (with a zlib header or raw) until the stream ends, the
/// input runs out, or `limit` bytes have come out; never allocates past
/// `limit`. The checksum is not checked: what a damaged stream decodes to
/// is kept either way.
fn inflate(input: &[u8], zlib: bool, limit: usize) -> Inflated {
    use inflate_flags::{
        TINFL_FLAG_IGNORE_ADLER32, TINFL_FLAG_PARSE_ZLIB_HEADER,
        TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
    };
    let flags = TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
        | TINFL_FLAG_IGNORE_ADLER32
        | if zlib {
            TINFL_FLAG_PARSE_ZLIB_HEADER
        } else {
            0
        };
    STATE.with_borrow_mut(|state| {
        let state = state.get_or_insert_with(Box::default);
        state.init();
        // A first guess of three times the input, as real streams go.
        let mut out = vec![0; input.len().saturating_mul(3).max(256).min(limit)];
        let (mut read, mut written) = (0, 0);
        let (deflate, ended) = loop {
            let (status, r, w) = decompress(state, &input[read..], &mut out, written, flags);
            (read, written) = (read + r, written + w);
            match status {
                TINFLStatus::Done => break (true, true),
                TINFLStatus::HasMoreOutput if out.len() < limit => {
                    out.resize(out.len().saturating_mul(2).min(limit), 0);
                }
                // At the limit, or a stream cut short: what came out stands.
                TINFLStatus::HasMoreOutput | TINFLStatus::FailedCannotMakeProgress => {
                    break (true, false);
                }
                _ => break (false, false),
            }
        };
        out.truncate(written);
        Inflated {
            bytes: out,
            deflate,
            ended,
        }
    })
}

/// What [`inflate`] got out of its input.
struct Inflated {
    /// What came out.
    bytes: Vec<u8>,
    /// Whether the input was deflate; when it turned out not to be, what
    /// came out before that stands.
    deflate: bool,
    /// Whether the deflate stream's end was reached: all of it came out,
    /// within the limit.
    ended: bool,
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(data: &[u8]) -> Stream {
        let mut s = Stream::new(Dictionary::new(), data.to_vec());
        s.compress().unwrap();
        assert!(s.dict.get(b"Filter").is_ok());
        s
    }

    #[test]
    fn limits_travel_in_a_trailer() {
        let limits = Limits {
            stream_bytes: 5,
            ratio: 6,
            total_bytes: 7,
            page_text_bytes: 8,
            page_operators: 9,
            ..Limits::default()
        };
        let mut trailer = Dictionary::new();
        trailer.set(TRAILER_KEY, Object::Dictionary(limits.to_dict()));
        assert_eq!(Limits::from_trailer(&trailer), limits);
        assert_eq!(Limits::from_trailer(&Dictionary::new()), Limits::default());
        let cap = Limits {
            stream_bytes: 5,
            max_pages: 7,
            ..Limits::default()
        };
        let both = limits.at_most(cap);
        assert_eq!((both.stream_bytes, both.max_pages), (5, 7));
        assert_eq!(both.total_bytes, limits.total_bytes.min(cap.total_bytes));
    }

    #[test]
    fn a_stream_that_fails_after_inflating_counts_against_the_total() {
        // Flate first, then ASCIIHex on 64 KiB that is not hex.
        let mut stream = deflate(&b"xyz".repeat(20_000));
        stream.dict.set(
            "Filter",
            Object::Array(vec![
                Object::Name(b"FlateDecode".to_vec()),
                Object::Name(b"ASCIIHexDecode".to_vec()),
            ]),
        );
        let inflater = Inflater::new(Limits {
            total_bytes: 1 << 20,
            ..Limits::default()
        });
        let errors: Vec<String> = (0..100)
            .map(|_| inflater.decode(&stream).unwrap_err().to_string())
            .collect();
        let damaged = errors
            .iter()
            .take_while(|e| e.contains("cannot be decoded"))
            .count();
        assert!((1..=16).contains(&damaged), "{damaged} decodes: {errors:?}");
        assert!(
            errors[damaged..]
                .iter()
                .all(|e| e.contains("max_document_inflate_mib")),
            "{errors:?}"
        );
    }

    #[test]
    fn each_limit_stops_a_bomb_and_names_itself() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = deflate(&zeros);
        let by_stream = Inflater::new(Limits {
            stream_bytes: 2 << 20,
            ratio: 1_000_000,
            ..Limits::default()
        });
        let err = by_stream.decode(&bomb).unwrap_err();
        assert!(
            err.is_limit() && err.to_string().contains("past 2 MiB (pdf.max_stream_mib"),
            "{err}"
        );

        let by_ratio = Inflater::new(Limits::default());
        let err = by_ratio.decode(&bomb).unwrap_err();
        assert!(
            err.to_string().contains("max_inflate_ratio (250×)"),
            "{err}"
        );

        let by_total = Inflater::new(Limits {
            ratio: 1_000_000,
            total_bytes: 12 << 20,
            ..Limits::default()
        });
        assert_eq!(by_total.decode(&bomb).unwrap().len(), 8 << 20);
        let err = by_total.decode(&bomb).unwrap_err();
        assert!(
            err.to_string()
                .contains("max_document_inflate_mib (12 MiB)"),
            "{err}"
        );
    }

    #[test]
    fn a_prefix_inflates_only_what_is_asked_and_counts() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let inflater = Inflater::new(Limits::default());
        let start = inflater.decode_prefix(&deflate(&text), 1000).unwrap();
        assert_eq!(start, text[..1000]);
        assert_eq!(inflater.used(), 1000);
        // Not one plain Flate stream: not read this way.
        assert_eq!(
            inflater.decode_prefix(&Stream::new(Dictionary::new(), text.clone()), 10),
            None
        );
        let mut junk = deflate(&text);
        junk.set_content(b"not zlib".to_vec());
        assert_eq!(inflater.decode_prefix(&junk, 10), None);
        // Never past the document's total.
        let small = Inflater::new(Limits {
            total_bytes: 100,
            ..Limits::default()
        });
        assert_eq!(
            small.decode_prefix(&deflate(&text), 1000).unwrap().len(),
            100
        );
    }

    #[test]
    fn a_whole_stream_decodes_only_when_it_ends_within_every_limit() {
        let text: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let inflater = Inflater::new(Limits::default());
        assert_eq!(
            inflater.decode_whole(&deflate(&text), 80_000),
            Some(text.clone())
        );
        assert_eq!(inflater.used(), 80_000);
        // One byte short of its end: left for its reader.
        assert_eq!(inflater.decode_whole(&deflate(&text), 79_999), None);
        // Cut short, or not Flate at all: left for its reader.
        let mut cut = deflate(&text);
        let half = cut.content.len() / 2;
        cut.content.truncate(half);
        assert_eq!(inflater.decode_whole(&cut, 1 << 20), None);
        let plain = Stream::new(Dictionary::new(), text.clone());
        assert_eq!(inflater.decode_whole(&plain, 1 << 20), None);
        // Past the ratio (above its floor) or the document's total: left
        // for its reader, which names the limit.
        let zeros = deflate(&vec![0u8; 3 << 20]);
        let strict = Inflater::new(Limits {
            ratio: 10,
            ..Limits::default()
        });
        assert_eq!(strict.decode_whole(&zeros, 4 << 20), None);
        assert!(strict.decode(&zeros).unwrap_err().is_limit());
        let small = Inflater::new(Limits {
            total_bytes: 1000,
            ..Limits::default()
        });
        assert_eq!(small.decode_whole(&deflate(&text), 1 << 20), None);
    }

    #[test]
    fn flate_decodes_honest_streams_as_lopdf_does_and_keeps_more_of_damaged_ones() {
        let over = |e: &lopdf::Error| {
            matches!(
                e,
                lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. })
            )
        };
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let zlib = deflate(&text).content;
        let mut bad_checksum = zlib.clone();
        *bad_checksum.last_mut().unwrap() ^= 0xFF;
        let mut bad_header = zlib.clone();
        bad_header[0] = 0;
        let cases = [
            zlib.clone(),
            zlib[..zlib.len() / 2].to_vec(),
            bad_checksum,
            bad_header,
            b"not zlib at all".to_vec(),
            Vec::new(),
            vec![0x78],
        ];
        for (i, input) in cases.iter().enumerate() {
            for cap in [0, 1, 1000, text.len() - 1, text.len(), 1 << 20] {
                let mut stream = Stream::new(Dictionary::new(), input.clone());
                stream
                    .dict
                    .set("Filter", Object::Name(b"FlateDecode".to_vec()));
                let theirs = stream.decompressed_content_with_limit(cap);
                let ours = flate_like_lopdf(input, cap);
                let what = format!("case {i}, cap {cap}");
                match (theirs, ours) {
                    // An honest stream decodes to the same bytes.
                    (Ok(a), Ok(b)) if i == 0 => assert!(a == b, "{what}"),
                    // A damaged one to at least what lopdf keeps, and
                    // nothing that is not the text.
                    (Ok(a), Ok(b)) => {
                        assert!(b.len() >= a.len() && text.starts_with(&b), "{what}")
                    }
                    (Err(a), Err(b)) => assert!(over(&a) && over(&b), "{what}"),
                    // lopdf loses the last read of a stream whose checksum
                    // fails, so its output may fit under a limit ours passes.
                    (Ok(a), Err(b)) if i == 2 => {
                        assert!(a.len() <= cap && over(&b), "{what}")
                    }
                    (a, b) => panic!(
                        "{what}: lopdf {:?}, ours {:?}",
                        a.map(|v| v.len()),
                        b.map(|v| v.len())
                    ),
                }
            }
        }
    }

    #[test]
    fn honest_streams_decode_and_plain_ones_pass_through() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let inflater = Inflater::new(Limits::default());
        assert_eq!(inflater.decode(&deflate(&text)).unwrap(), text);
        assert_eq!(inflater.used(), text.len() as u64);
        let plain = Stream::new(Dictionary::new(), vec![7; 100]);
        assert_eq!(inflater.decode(&plain).unwrap(), vec![7; 100]);
        let mut junk = Stream::new(Dictionary::new(), b"not zlib".to_vec());
        junk.dict
            .set("Filter", Object::Name(b"NoSuchDecode".to_vec()));
        assert!(!inflater.decode(&junk).unwrap_err().is_limit());
    }
}
