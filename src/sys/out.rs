//! Standard output: only what the user asked for (CSV data, a summary, a report).
//! A reader that closes the pipe (`batchinfer … -o - | head`) has taken what it
//! wanted: that is not an error, never a panic, and the process exits 0. Every
//! write to stdout goes through here so that one flag records it.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether a write found stdout closed by its reader.
pub fn closed() -> bool {
    CLOSED.load(Ordering::SeqCst)
}

fn note(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CLOSED.store(true, Ordering::SeqCst);
    }
    e
}

/// Prints `text` to stdout. A closed pipe is recorded and not an error.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::SeqCst);
            Ok(())
        }
        other => other,
    }
}

/// Standard output as a writer for streamed data; a closed pipe is an error here
/// (it stops the run) and recorded, so that `main` exits 0 for it.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stdout().lock().write(buf).map_err(note)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush().map_err(note)
    }
}
