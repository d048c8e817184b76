//! warmlane's PDF reader and splitter: opens untrusted PDFs and cuts them
//! into batches, small self-contained PDFs that hold only the objects their
//! pages reach.
//!
//! Opening reads the cross-reference table and walks the page tree, nothing
//! more; objects are read one at a time as batches need them, so memory
//! does not grow with the document. A file whose table is missing or wrong
//! has it rebuilt by scanning (a truncated file keeps its early pages); an
//! encrypted one is decrypted object by object. Everything is read under
//! [`Limits`]: how far streams may inflate, how many pages and objects a
//! document may have, how large a batch may grow. A limit that is passed is
//! an error naming it — for the document when its structure passes one,
//! for the pages that reach it otherwise.
//!
//! It never panics on its input, and never decodes a stream but through
//! [`pdf_syntax::limits::Inflater`].

mod batch;
mod crypt;
mod pages;
use pdf_syntax::object as parse;
mod repair;
mod source;

use std::ops::Range;

pub use batch::BatchError;
pub use pdf_syntax::limits::Limits;

use crypt::Crypt;
use pages::PageRef;
use source::{LazyFile, ReadError};

/// How the document was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Object by object through its own cross-reference table.
    Lazy,
    /// Through a cross-reference table rebuilt by scanning the file,
    /// because its own was missing, damaged, or led to no pages.
    Repaired,
    /// Decrypted object by object (through its own table or a rebuilt one).
    Decrypted,
}

/// Why a document could not be processed at all. (A page that cannot be read
/// is not this: it becomes a page error and the document goes on.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// The file could not be read.
    Io(String),
    /// The bytes are not a PDF.
    NotPdf(String),
    /// The PDF is encrypted and neither the empty password nor the one given
    /// opens it.
    PasswordRequired {
        /// Whether a password was given (and was wrong).
        given: bool,
    },
    /// The PDF is damaged beyond repair, or uses something unsupported.
    Unreadable(String),
    /// Reading the PDF's structure would pass one of the [`Limits`]; says
    /// which.
    Limit(String),
}

impl std::fmt::Display for DocumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocumentError::Io(why) => write!(f, "cannot read the file: {why}"),
            DocumentError::NotPdf(why) => write!(f, "not a PDF: {why}"),
            DocumentError::PasswordRequired { given: false } => {
                write!(
                    f,
                    "the PDF is encrypted and needs a password (give it with --password)"
                )
            }
            DocumentError::PasswordRequired { given: true } => {
                write!(
                    f,
                    "the PDF is encrypted and the password given does not open it"
                )
            }
            DocumentError::Unreadable(why) => write!(f, "the PDF cannot be read: {why}"),
            DocumentError::Limit(why) => write!(f, "the PDF is over a limit: {why}"),
        }
    }
}

impl std::error::Error for DocumentError {}

impl From<ReadError> for DocumentError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Limit(why) => DocumentError::Limit(why),
            ReadError::Damaged(why) => DocumentError::Unreadable(why),
        }
    }
}

/// An open PDF: its pages, ready to be cut into batches.
pub struct PdfDocument {
    file: LazyFile,
    pages: Vec<PageRef>,
    access: Access,
}

impl PdfDocument {
    /// Opens a PDF from its bytes under the default [`Limits`]. The empty
    /// password is always tried; `password` is tried after it.
    pub fn open(bytes: Vec<u8>, password: Option<&str>) -> Result<PdfDocument, DocumentError> {
        Self::open_with(bytes, password, Limits::default())
    }

    /// Opens a PDF from its bytes under `limits`.
    pub fn open_with(
        bytes: Vec<u8>,
        password: Option<&str>,
        limits: Limits,
    ) -> Result<PdfDocument, DocumentError> {
        let head = &bytes[..bytes.len().min(1024)];
        if !head.windows(5).any(|w| w == b"%PDF-") {
            let shown: String = String::from_utf8_lossy(&bytes[..bytes.len().min(16)])
                .chars()
                .map(|c| if c.is_control() { '.' } else { c })
                .collect();
            return Err(DocumentError::NotPdf(if bytes.is_empty() {
                "the file is empty".into()
            } else {
                format!("no %PDF- header (it starts with {shown:?})")
            }));
        }
        let file = unlock(LazyFile::open(bytes, limits)?, password)?;
        if !file.repaired() {
            match pages::walk(&file) {
                Ok(pages) if !pages.is_empty() => return Ok(Self::new(file, pages)),
                Err(ReadError::Limit(why)) => return Err(DocumentError::Limit(why)),
                Ok(_) => tracing::debug!("no pages through the cross-reference table; rebuilding"),
                Err(e) => {
                    tracing::debug!(error = %e, "page tree unreadable through the cross-reference table; rebuilding")
                }
            }
        }
        let file = if file.repaired() {
            file
        } else {
            unlock(file.rebuilt()?, password)?
        };
        let pages = match pages::walk(&file) {
            Ok(pages) if !pages.is_empty() => pages,
            Err(ReadError::Limit(why)) => return Err(DocumentError::Limit(why)),
            found => {
                if let Err(e) = found {
                    tracing::debug!(error = %e, "page tree lost; taking the page objects found");
                }
                pages::orphans(&file)?
            }
        };
        if pages.is_empty() {
            return Err(DocumentError::Unreadable("no pages could be found".into()));
        }
        Ok(Self::new(file, pages))
    }

    fn new(file: LazyFile, pages: Vec<PageRef>) -> PdfDocument {
        let access = if file.decrypts() {
            Access::Decrypted
        } else if file.repaired() {
            Access::Repaired
        } else {
            Access::Lazy
        };
        PdfDocument {
            file,
            pages,
            access,
        }
    }

    /// Number of pages.
    pub fn page_count(&self) -> u32 {
        self.pages.len() as u32
    }

    /// How the document was read.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The limits the document is read under.
    pub fn limits(&self) -> &Limits {
        self.file.limits()
    }

    /// A self-contained PDF holding pages `range` (0-based, in document
    /// order) and only the objects they reach, with the parser's limits in
    /// its trailer.
    pub fn batch(&self, range: Range<usize>) -> Result<Vec<u8>, BatchError> {
        let pages = self
            .pages
            .get(range.clone())
            .ok_or_else(|| BatchError::Damaged(format!("no pages {range:?}")))?;
        batch::build(&self.file, pages)
    }
}

/// Opens `file`'s encryption, if it has one.
fn unlock(mut file: LazyFile, password: Option<&str>) -> Result<LazyFile, DocumentError> {
    if file.is_encrypted() {
        let crypt = Crypt::open(&file, password)?;
        file.set_crypt(crypt);
    }
    Ok(file)
}

/// The entry point for the fuzz target (`fuzz/`) and the test suite's short
/// fuzz run: arbitrary bytes opened as a document and cut into batches;
/// must neither panic nor hang.
#[doc(hidden)]
pub mod fuzz {
    /// Opens `data` under small limits and cuts every page (the first 64)
    /// into a batch of its own, and the first 16 into one.
    pub fn open_and_cut(data: &[u8]) {
        let limits = crate::Limits {
            stream_bytes: 1 << 20,
            total_bytes: 8 << 20,
            batch_bytes: 4 << 20,
            max_pages: 1000,
            ..crate::Limits::default()
        };
        let Ok(doc) = crate::PdfDocument::open_with(data.to_vec(), None, limits) else {
            return;
        };
        let pages = doc.page_count() as usize;
        for page in 0..pages.min(64) {
            let _ = doc.batch(page..page + 1);
        }
        let _ = doc.batch(0..pages.min(16));
    }
}
