//! Strict quoting for CSV input, checked as the bytes stream past the parser.
//!
//! arrow-csv (through csv-core) is lenient: a quote that opens a field and never
//! closes makes the rest of the file one field, and text after a closing quote is
//! taken literally. On real data that silently swallows or merges rows. This
//! reader applies the rules of RFC 4180 as Python's `csv` module applies them with
//! `strict=True`: a quote at the start of a field opens a quoted field, which ends
//! at a quote followed by the delimiter, a line end or the end of the input (a
//! doubled quote is a literal quote); anything else after a closing quote, or the
//! end of the input inside a quoted field, is bad quoting. A quote inside an
//! unquoted field is a literal character, as in both references. A UTF-8 byte
//! order mark at the start is dropped.
//!
//! The checks follow csv-core's notion of a field start (the start of the input,
//! after a delimiter, after `\r` or `\n`), so the checked bytes are parsed exactly
//! as before when they pass. Errors name the file and the physical line.

use std::io::{self, Read};

use super::csv_skip::Rejected;
use super::BadValue;

/// Bad quoting found in a CSV input, as the `io::Error` payload of a read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad quoting in {file} at line {line}: {what}")]
pub struct BadQuoting {
    pub file: String,
    /// 1-based physical line (the header is line 1).
    pub line: u64,
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside quotes; `at_start`: the next byte starts a field.
    Unquoted { at_start: bool },
    /// Inside a quoted field.
    Quoted,
    /// Inside a quoted field, just after a quote: it closes the field unless the
    /// next byte is a second quote.
    AfterQuote,
}

/// A reader that fails with [`BadQuoting`] where the bytes it passes on are badly quoted.
pub struct QuoteChecked<R> {
    inner: R,
    quote: u8,
    delimiter: u8,
    state: State,
    /// Line of the next byte (1-based).
    line: u64,
    /// Line where the open quoted field started.
    opened_at: u64,
    file: String,
    /// Whether the start (and a byte order mark there) has been read.
    started: bool,
    /// The first bytes, read ahead to look for a byte order mark.
    held: Vec<u8>,
    done: bool,
    /// Whether the end of the bytes is the end of the input (not a prefix of it).
    end_is_eof: bool,
    /// The bad quoting found, kept for callers whose parser flattens read errors
    /// into text (arrow's type inference does).
    failed: Option<BadQuoting>,
    /// `--on-error skip`: text after a closing quote makes its row a bad row (the
    /// row can still be delimited), reported here when given, instead of an error.
    lenient: Option<Option<Rejected>>,
    /// Records ended so far (the header is record 0), and whether the current
    /// one has begun: counted only when lenient.
    records: u64,
    in_record: bool,
    last_rejected: Option<u64>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<R: Read> QuoteChecked<R> {
    pub fn new(inner: R, file: impl Into<String>, delimiter: u8, quote: u8) -> Self {
        QuoteChecked {
            inner,
            quote,
            delimiter,
            state: State::Unquoted { at_start: true },
            line: 1,
            opened_at: 1,
            file: file.into(),
            started: false,
            held: vec![],
            done: false,
            end_is_eof: true,
            failed: None,
            lenient: None,
            records: 0,
            in_record: false,
            last_rejected: None,
        }
    }

    /// Under `--on-error skip`: a row with text after a closing quote is set aside
    /// (reported to `rejected`, if given) instead of failing the read. A quote
    /// that never closes still fails it: where its row ends cannot be known.
    pub fn lenient(mut self, rejected: Option<Rejected>) -> Self {
        self.lenient = Some(rejected);
        self
    }

    /// Counts the records that unquoted `span` ends (blank lines are none).
    fn count_records(&mut self, span: &[u8]) {
        if self.lenient.is_none() {
            return;
        }
        let mut last = 0;
        for p in memchr::memchr2_iter(b'\n', b'\r', span) {
            if p > last || self.in_record {
                self.records += 1;
            }
            self.in_record = false;
            last = p + 1;
        }
        if last < span.len() {
            self.in_record = true;
        }
    }

    /// The bad quoting this reader failed on, if it did.
    pub fn failure(&self) -> Option<&BadQuoting> {
        self.failed.as_ref()
    }

    /// For a prefix of the input: its end may cut a quoted field.
    pub fn prefix_only(mut self) -> Self {
        self.end_is_eof = false;
        self
    }

    fn bad(&mut self, line: u64, what: String) -> io::Error {
        let bad = BadQuoting {
            file: self.file.clone(),
            line,
            what,
        };
        self.failed = Some(bad.clone());
        io::Error::new(io::ErrorKind::InvalidData, bad)
    }

    /// Checks `bytes`, which follow everything checked so far.
    fn check(&mut self, bytes: &[u8]) -> io::Result<()> {
        let (quote, delimiter) = (self.quote, self.delimiter);
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Unquoted { at_start } => {
                    // Only a quote right after a field boundary opens a field: jump
                    // from quote to quote (rare in data) and look at the byte before.
                    let rest = &bytes[i..];
                    let boundary = |b: u8| b == delimiter || b == b'\n' || b == b'\r';
                    let Some(k) = memchr::memchr(quote, rest) else {
                        self.line += memchr::memchr_iter(b'\n', rest).count() as u64;
                        self.count_records(rest);
                        let ends_field = rest.last().map_or(at_start, |&b| boundary(b));
                        self.state = State::Unquoted {
                            at_start: ends_field,
                        };
                        i = bytes.len();
                        continue;
                    };
                    self.line += memchr::memchr_iter(b'\n', &rest[..k]).count() as u64;
                    self.count_records(&rest[..k]);
                    self.in_record = true;
                    let opens = if k == 0 {
                        at_start
                    } else {
                        boundary(rest[k - 1])
                    };
                    if opens {
                        self.state = State::Quoted;
                        self.opened_at = self.line;
                    } else {
                        // A quote inside an unquoted field is a character.
                        self.state = State::Unquoted { at_start: false };
                    }
                    i += k + 1;
                }
                State::Quoted => {
                    let rest = &bytes[i..];
                    let next = memchr::memchr(quote, rest);
                    let span = &rest[..next.unwrap_or(rest.len())];
                    self.line += memchr::memchr_iter(b'\n', span).count() as u64;
                    match next {
                        Some(k) => {
                            self.state = State::AfterQuote;
                            i += k + 1;
                        }
                        None => i = bytes.len(),
                    }
                }
                State::AfterQuote => {
                    self.after_quote(bytes, i)?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    /// The byte after a quote inside a quoted field: a second quote, the field's
    /// end, or (bad quoting) text.
    fn after_quote(&mut self, bytes: &[u8], i: usize) -> io::Result<()> {
        let (quote, delimiter) = (self.quote, self.delimiter);
        let b = bytes[i];
        if b == quote {
            self.state = State::Quoted;
        } else if b == delimiter {
            self.state = State::Unquoted { at_start: true };
        } else if b == b'\r' || b == b'\n' {
            self.line += u64::from(b == b'\n');
            self.count_records(&bytes[i..=i]);
            self.state = State::Unquoted { at_start: true };
        } else if let Some(rejected) = &self.lenient {
            // csv-core reads the text as part of the field: the row is
            // delimited, and set aside.
            let row = self.records.saturating_sub(1);
            if self.last_rejected != Some(row) {
                self.last_rejected = Some(row);
                if let Some(r) = rejected {
                    r.lock().unwrap_or_else(|p| p.into_inner()).push(BadValue {
                                    file: self.file.clone(),
                                    row,
                                    column: String::new(),
                                    reason: format!(
                                        "bad quoting at line {}: text follows the closing quote of a quoted field",
                                        self.line
                                    ),
                                });
                }
            }
            self.state = State::Unquoted { at_start: false };
        } else {
            let shown = String::from_utf8_lossy(&bytes[i..(i + 12).min(bytes.len())])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            return Err(self.bad(
                self.line,
                format!(
                    "text ({shown:?}) follows the closing quote of a quoted field; \
                                 a quote inside a quoted field is written twice (\"\"), and a \
                                 field that holds quotes must be quoted as a whole"
                ),
            ));
        }
        Ok(())
    }

    fn at_end(&mut self) -> io::Result<()> {
        if self.end_is_eof && self.state == State::Quoted {
            return Err(self.bad(
                self.opened_at,
                "a quoted field opens here and is never closed, so the rest of the file \
                 would be one field; close the quote, or double the quote inside the field"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for QuoteChecked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.started {
            // The first three bytes, to drop a byte order mark.
            self.started = true;
            let mut head = Vec::with_capacity(BOM.len());
            (&mut self.inner)
                .take(BOM.len() as u64)
                .read_to_end(&mut head)?;
            if head == BOM {
                head.clear();
            }
            self.check(&head)?;
            self.held = head;
        }
        if !self.held.is_empty() {
            let n = self.held.len().min(buf.len());
            buf[..n].copy_from_slice(&self.held[..n]);
            self.held.drain(..n);
            return Ok(n);
        }
        if self.done {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.done = true;
            self.at_end()?;
            return Ok(0);
        }
        self.check(&buf[..n])?;
        Ok(n)
    }
}

/// The bad-quoting error inside an error chain, if that is what it is.
pub fn bad_quoting(e: &anyhow::Error) -> Option<&BadQuoting> {
    e.chain().find_map(|c| {
        c.downcast_ref::<BadQuoting>().or_else(|| {
            c.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<BadQuoting>())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `text` through the checker in reads of `chunk` bytes.
    fn run(text: &[u8], chunk: usize) -> Result<Vec<u8>, BadQuoting> {
        struct Chunks<'a>(&'a [u8], usize);
        impl Read for Chunks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = vec![];
        let mut r = QuoteChecked::new(Chunks(text, chunk), "f.csv", b',', b'"');
        match r.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(e
                .get_ref()
                .and_then(|i| i.downcast_ref::<BadQuoting>())
                .cloned()
                .unwrap_or_else(|| panic!("not a quoting error: {e}"))),
        }
    }

    #[test]
    fn good_quoting_passes_unchanged_whatever_the_read_sizes() {
        let text = b"a,b\n\"x,\"\"y\"\"\nz\",1\nab\"c,2\r\n\"\",3\r\"q\"";
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(run(text, chunk).unwrap(), text.to_vec(), "chunk {chunk}");
        }
    }

    #[test]
    fn an_unclosed_quote_is_refused_at_the_line_it_opens() {
        let text = b"a,b\n1,2\n\"open,3\n4,5\n6,7\n";
        for chunk in [1, 4, 1000] {
            let e = run(text, chunk).unwrap_err();
            assert_eq!(e.line, 3, "chunk {chunk}");
            assert!(e.what.contains("never closed"), "{}", e.what);
        }
        // In the last row, with no line end after it.
        assert_eq!(run(b"a,b\n1,\"2", 3).unwrap_err().line, 2);
    }

    #[test]
    fn text_after_a_closing_quote_is_refused_at_its_line() {
        let e = run(b"a,b\n1,2\n\"x\nx\"y,3\n", 2).unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.what.contains("follows the closing quote"), "{}", e.what);
    }

    #[test]
    fn a_byte_order_mark_is_dropped_and_a_lookalike_kept() {
        for chunk in [1, 2, 1000] {
            assert_eq!(run(b"\xEF\xBB\xBFa\n1\n", chunk).unwrap(), b"a\n1\n");
            assert_eq!(run(b"\xEFa\n", chunk).unwrap(), b"\xEFa\n");
            assert_eq!(run(b"\xEF\xBB", chunk).unwrap(), b"\xEF\xBB");
            assert_eq!(run(b"", chunk).unwrap(), b"");
        }
        // A quote right after the mark opens a field.
        assert!(run(b"\xEF\xBB\xBF\"a\n", 1).is_err());
    }

    #[test]
    fn lenient_checking_names_the_data_row_of_text_after_a_quote() {
        let text = b"a,b\r\n\r\n1,\"x\ny\"\r\n2,\"q\"z\n\n3,\"r\"s\r4,5\n";
        for chunk in [1, 3, 1000] {
            let rejected: Rejected = Default::default();
            let mut out = vec![];
            let mut r =
                QuoteChecked::new(&text[..], "f.csv", b',', b'"').lenient(Some(rejected.clone()));
            let mut buf = vec![0u8; chunk];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, text.to_vec());
            let rows: Vec<u64> = rejected.lock().unwrap().iter().map(|b| b.row).collect();
            assert_eq!(rows, [1, 2], "chunk {chunk}");
        }
        // A quote that never closes still fails.
        let mut r = QuoteChecked::new(&b"a\n\"x\n"[..], "f.csv", b',', b'"').lenient(None);
        assert!(r.read_to_end(&mut vec![]).is_err());
    }
}
