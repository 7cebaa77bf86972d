//! libtorch's errors without their C++ backtraces.
//!
//! A `c10::Error`'s text is its message, then "Exception raised from <function> at
//! <file>:<line> (most recent call first):" and a line per stack frame, with library addresses
//! and install paths: kilobytes that tell a client nothing about its request and something
//! about the host. Errors carry the message's first line, at most [`MAX_MESSAGE`] characters;
//! the full text goes to the debug log.

use tch::TchError;

use super::clip_to;

/// Characters of libtorch's message that an error keeps.
pub const MAX_MESSAGE: usize = 300;

/// The first line of libtorch's message: no backtrace, at most [`MAX_MESSAGE`] characters.
pub fn torch_error_line(e: &TchError) -> String {
    let text = match e {
        // Not `to_string()`: its "Internal torch error: " prefix says nothing.
        TchError::Torch(message) => message.clone(),
        other => other.to_string(),
    };
    let message = text.split("Exception raised from").next().unwrap_or_default();
    let line = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("unknown libtorch error");
    clip_to(line, MAX_MESSAGE)
}

/// [`torch_error_line`], after logging libtorch's full text at debug level: the one place
/// where a libtorch error becomes text that a client may see.
pub fn short_torch_error(e: &TchError) -> String {
    tracing::debug!(error = %e, "libtorch error, in full");
    torch_error_line(e)
}
