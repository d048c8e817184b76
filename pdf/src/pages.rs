//! The page tree: a document's pages in order, each with the attributes it
//! inherits, found by walking `/Kids` from the catalog — through cycles,
//! lies about `/Count`, and kids that are missing.

use std::collections::HashSet;
use std::sync::Arc;

use lopdf::{Object, ObjectId};

use crate::source::{LazyFile, ReadError};

/// Page attributes a page inherits from its ancestors in the page tree.
pub(crate) const INHERITED: [&[u8]; 4] = [b"Resources", b"MediaBox", b"CropBox", b"Rotate"];
/// Deepest page tree walked.
const MAX_TREE_DEPTH: usize = 64;

/// Attributes a page inherits, by key; shared by the pages of one node.
pub(crate) type Inherited = Arc<Vec<(&'static [u8], Object)>>;

/// One page: its object, and what it inherits.
#[derive(Debug, Clone)]
pub(crate) struct PageRef {
    pub(crate) id: ObjectId,
    pub(crate) inherited: Inherited,
}

/// The document's pages in order. A kid that cannot be read becomes a page
/// (its batch will say what is wrong) when it is listed in the file's table
/// or the table was rebuilt; a kid the file never held is skipped.
pub(crate) fn walk(file: &LazyFile) -> Result<Vec<PageRef>, ReadError> {
    let max_pages = file.limits().max_pages as usize;
    let root = file.resolve(
        file.trailer()
            .get(b"Root")
            .map_err(|_| "trailer has no /Root".to_string())?,
    )?;
    let root = root
        .as_dict()
        .map_err(|_| "catalog is not a dictionary".to_string())?;
    let tree = root
        .get(b"Pages")
        .map_err(|_| "catalog has no /Pages".to_string())?
        .clone();
    let mut pages = Vec::new();
    let mut seen = HashSet::new();
    // (node, inherited attributes, depth)
    let mut stack: Vec<(Object, Inherited, usize)> = vec![(tree, Inherited::default(), 0)];
    while let Some((node, inherited, depth)) = stack.pop() {
        let id = match node {
            Object::Reference(id) => Some(id),
            _ => None,
        };
        if let Some(id) = id
            && !seen.insert(id)
        {
            continue;
        }
        let resolved = match file.resolve(&node) {
            Ok(obj) => obj,
            Err(ReadError::Limit(why)) => return Err(ReadError::Limit(why)),
            Err(ReadError::Damaged(why)) => {
                tracing::debug!(error = %why, "unreadable page tree node");
                Object::Null
            }
        };
        let Ok(dict) = resolved.as_dict() else {
            // A kid that is lost: a page whose batch will say so.
            if let Some(id) = id
                && depth > 0
                && (file.lists(id.0) || file.repaired())
            {
                pages.push(PageRef { id, inherited });
            }
            check(pages.len(), max_pages)?;
            continue;
        };
        let mut own = None;
        for key in INHERITED {
            if let Ok(v) = dict.get(key) {
                let list = own.get_or_insert_with(|| (*inherited).clone());
                list.retain(|(k, _)| *k != key);
                list.push((key, v.clone()));
            }
        }
        let inherited = own.map_or(inherited, Arc::new);
        match dict.get(b"Kids").map(|k| file.resolve(k)) {
            Ok(Ok(Object::Array(kids))) if depth < MAX_TREE_DEPTH => {
                for kid in kids.into_iter().rev() {
                    stack.push((kid, inherited.clone(), depth + 1));
                }
            }
            Ok(Err(ReadError::Limit(why))) => return Err(ReadError::Limit(why)),
            _ => {
                let is_page = dict
                    .get(b"Type")
                    .and_then(Object::as_name)
                    .map_or(true, |t| t == b"Page");
                if let (Some(id), true) = (id, is_page) {
                    pages.push(PageRef { id, inherited });
                }
            }
        }
        check(pages.len(), max_pages)?;
    }
    Ok(pages)
}

/// The page objects a scan found, for a file whose page tree is lost; each
/// inherits what its `/Parent` chain still gives.
pub(crate) fn orphans(file: &LazyFile) -> Result<Vec<PageRef>, ReadError> {
    let max_pages = file.limits().max_pages as usize;
    check(file.orphan_pages().len(), max_pages)?;
    let mut pages = Vec::with_capacity(file.orphan_pages().len());
    for &id in file.orphan_pages() {
        let mut inherited: Vec<(&'static [u8], Object)> = Vec::new();
        let mut parent = file
            .get(id)?
            .as_dict()
            .ok()
            .and_then(|d| d.get(b"Parent").ok().cloned());
        let mut seen = HashSet::new();
        while let Some(Object::Reference(pid)) = parent
            && seen.insert(pid)
            && seen.len() <= MAX_TREE_DEPTH
        {
            let node = file.get(pid).unwrap_or(Object::Null);
            let Ok(dict) = node.as_dict() else { break };
            for key in INHERITED {
                if !inherited.iter().any(|(k, _)| *k == key)
                    && let Ok(v) = dict.get(key)
                {
                    inherited.push((key, v.clone()));
                }
            }
            parent = dict.get(b"Parent").ok().cloned();
        }
        pages.push(PageRef {
            id,
            inherited: Arc::new(inherited),
        });
    }
    Ok(pages)
}

fn check(pages: usize, max: usize) -> Result<(), ReadError> {
    if pages > max {
        return Err(ReadError::Limit(format!(
            "the document has more than pdf.max_pages ({max}) pages"
        )));
    }
    Ok(())
}
