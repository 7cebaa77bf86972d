//! Lines for standard output and standard error that never panic: a reader that went away
//! (`lorabeam jobs | head -1`, `| true`) ends the process quietly, as `cat` does; a full disk
//! on standard output is an error on standard error.

use std::io::Write;

/// Writes one line to standard output (see [`outln!`](crate::outln)).
pub fn out_line(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()) {
        stdout_failed(&err);
    }
}

/// Writes `text` to standard output as it is (a table that ends its own lines).
pub fn out_text(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        stdout_failed(&err);
    }
}

/// Writes one line to standard error; nothing is left to tell when that fails, so a closed
/// standard error is ignored (see [`errln!`](crate::errln)).
pub fn err_line(line: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line).and_then(|()| err.write_all(b"\n"));
}

/// A write to standard output failed: a closed pipe ends the process with success (the reader
/// has all it wanted); anything else ends it with an error.
pub fn stdout_failed(err: &std::io::Error) -> ! {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    err_line(format_args!("error: writing to standard output: {err}"));
    std::process::exit(1);
}

/// `crate::outln!` that ends the process quietly when standard output is a closed pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::term::out_line(format_args!($($arg)*)) };
}

/// `crate::errln!` that never panics.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::term::err_line(format_args!($($arg)*)) };
}
