//! What can go wrong with an object, said with its URL: the three a user must tell apart (no
//! such object, no permission, changed under us) each have their own variant.

use std::path::PathBuf;

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url}: no such object")]
    NotFound { url: String },
    #[error(
        "{url}: access denied ({detail}); check the credentials this process has (AWS_*, GOOGLE_*, AZURE_* or the instance's role)"
    )]
    Denied { url: String, detail: String },
    #[error("{url} changed while it was in use: it was ETag {expected}, the store now holds {found}")]
    Changed { url: String, expected: String, found: String },
    #[error("{url} is {size} bytes, more than the {max} lorabeam reads here")]
    TooLarge { url: String, size: u64, max: u64 },
    #[error("{url}: {detail}")]
    Store { url: String, detail: String },
    #[error("{path}: {source}")]
    Local { path: PathBuf, source: std::io::Error },
}

impl StorageError {
    /// Maps the crate's error for the object at `url`: its Display holds the request's URL and
    /// the store's answer, never a credential (signatures travel in headers it does not print).
    pub(crate) fn from_store(url: &str, error: object_store::Error) -> Self {
        use object_store::Error as E;
        let url = url.to_string();
        match error {
            E::NotFound { .. } => StorageError::NotFound { url },
            E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => {
                let text = source.to_string();
                StorageError::Denied { url, detail: answer(&text).unwrap_or_else(|| first_line(&text)) }
            }
            E::Precondition { .. } => {
                StorageError::Changed { url, expected: "the one read first".into(), found: "another".into() }
            }
            // Listings and multipart calls report the HTTP status only inside a generic error.
            other => {
                let text = other.to_string();
                let detail = answer(&text).unwrap_or_else(|| first_line(&text));
                if text.contains("403 Forbidden") || text.contains("401 Unauthorized") {
                    StorageError::Denied { url, detail }
                } else if text.contains("NoSuchBucket") || text.contains("404 Not Found") {
                    StorageError::NotFound { url }
                } else {
                    StorageError::Store { url, detail }
                }
            }
        }
    }

    pub(crate) fn local(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Local { path: path.into(), source }
    }
}

/// The store's own words from an S3-style XML answer: `Code: Message`
/// (`SignatureDoesNotMatch: The request signature we calculated does not match…`).
fn answer(text: &str) -> Option<String> {
    let field = |tag: &str| {
        let start = text.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = text[start..].find(&format!("</{tag}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    let code = field("Code")?;
    Some(match field("Message") {
        Some(message) => first_line(&format!("{code}: {message}")),
        None => code,
    })
}

/// The store's answers can be long XML bodies: the first line says what happened.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut cut: String = line.chars().take(400).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    cut
}
