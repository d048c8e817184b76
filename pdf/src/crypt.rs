//! Decrypting an encrypted document object by object (RC4, AES-128 and
//! AES-256 through lopdf's standard security handler), so an encrypted file
//! is read as lazily, and under the same limits, as any other.

use lopdf::encryption::decrypt_object;
use lopdf::{Dictionary, Document, EncryptionState, Object, ObjectId};

use crate::DocumentError;
use crate::source::{LazyFile, ReadError};

/// The key to an encrypted document.
pub(crate) struct Crypt {
    state: EncryptionState,
    /// The encryption dictionary, which is never encrypted itself.
    dict: Option<ObjectId>,
}

impl Crypt {
    /// Opens `file`'s encryption with the empty password, then `password`.
    pub(crate) fn open(file: &LazyFile, password: Option<&str>) -> Result<Crypt, DocumentError> {
        let entry = file
            .trailer()
            .get(b"Encrypt")
            .map_err(|_| DocumentError::Unreadable("the trailer names no encryption".into()))?;
        let (dict, id) = match entry {
            Object::Reference(id) => match file.raw(*id) {
                Ok(Object::Dictionary(d)) => (d, Some(*id)),
                Ok(_) | Err(ReadError::Damaged(_)) => {
                    return Err(DocumentError::Unreadable(
                        "the encryption dictionary is missing or damaged".into(),
                    ));
                }
                Err(ReadError::Limit(why)) => return Err(DocumentError::Limit(why)),
            },
            Object::Dictionary(d) => (d.clone(), None),
            _ => {
                return Err(DocumentError::Unreadable(
                    "the trailer's /Encrypt is not a dictionary".into(),
                ));
            }
        };
        // lopdf derives the key from a document: give it one holding only
        // the trailer and the encryption dictionary.
        let mut doc = Document::new();
        let at = id.unwrap_or((u32::MAX, 0));
        doc.objects.insert(at, Object::Dictionary(dict));
        let mut trailer: Dictionary = file.trailer().clone();
        trailer.set("Encrypt", Object::Reference(at));
        doc.trailer = trailer;
        for candidate in std::iter::once("").chain(password) {
            match EncryptionState::decode(&doc, candidate) {
                Ok(state) => return Ok(Crypt { state, dict: id }),
                Err(lopdf::Error::InvalidPassword)
                | Err(lopdf::Error::Decryption(
                    lopdf::encryption::DecryptionError::IncorrectPassword,
                )) => {}
                Err(e) => {
                    return Err(DocumentError::Unreadable(format!(
                        "its encryption cannot be opened: {e}"
                    )));
                }
            }
        }
        Err(DocumentError::PasswordRequired {
            given: password.is_some(),
        })
    }

    /// Decrypts object `id` in place.
    pub(crate) fn decrypt(&self, id: ObjectId, obj: &mut Object) -> Result<(), ReadError> {
        if Some(id) == self.dict {
            return Ok(());
        }
        decrypt_object(&self.state, id, obj).map_err(|e| {
            ReadError::Damaged(format!("object {} {} cannot be decrypted: {e}", id.0, id.1))
        })
    }
}
