//! CSV downloads: the one field rule every export uses (RFC 4180 quoting plus the OWASP
//! "CSV injection" defence) and a streamed response, so a large export is sent in chunks as it
//! is encoded instead of being built as one string first.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt::{Display, Write as _};

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

/// A cell starting with one of these is read as a formula by spreadsheet programs (OWASP: `=`,
/// `+`, `-`, `@`, tab, carriage return), including the full-width forms some of them fold to
/// ASCII.
const FORMULA_STARTS: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];

/// Bytes encoded before a chunk is handed to the connection.
const CHUNK: usize = 64 * 1024;

/// A text cell (anything a person typed: names, emails, labels): a leading formula character is
/// defused with a `'` (the cell then reads as text), and the cell is quoted when it holds a
/// separator (`,` or `;`), a quote or a line break.
pub fn text(s: &str) -> Cow<'_, str> {
    let defused: Cow<'_, str> = if s.starts_with(FORMULA_STARTS) { Cow::Owned(format!("'{s}")) } else { Cow::Borrowed(s) };
    if defused.contains([',', ';', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", defused.replace('"', "\"\"")))
    } else {
        defused
    }
}

/// One CSV line, built cell by cell.
#[derive(Debug, Default)]
pub struct Row(String);

impl Row {
    /// An empty line.
    pub fn new() -> Row {
        Row(String::with_capacity(128))
    }

    fn separate(&mut self) {
        if !self.0.is_empty() {
            self.0.push(',');
        }
    }

    /// A text cell, see [`text`].
    pub fn text(mut self, s: &str) -> Row {
        self.separate();
        self.0.push_str(&text(s));
        self
    }

    /// A value the export itself produced (a number, a date, a currency code): written as is.
    /// Negative numbers must stay numbers, so the formula rule does not apply to them.
    pub fn value(mut self, v: impl Display) -> Row {
        self.separate();
        let _ = write!(self.0, "{v}");
        self
    }
}

/// Encodes `header` and `rows` lazily into chunks of about [`CHUNK`] bytes.
struct Chunks<I> {
    header: Option<&'static str>,
    rows: I,
}

impl<I: Iterator<Item = Row>> Iterator for Chunks<I> {
    type Item = Result<Bytes, Infallible>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = String::with_capacity(CHUNK + 256);
        if let Some(header) = self.header.take() {
            buf.push_str(header);
            buf.push_str("\r\n");
        }
        for row in self.rows.by_ref() {
            buf.push_str(&row.0);
            buf.push_str("\r\n");
            if buf.len() >= CHUNK {
                break;
            }
        }
        (!buf.is_empty()).then(|| Ok(Bytes::from(buf)))
    }
}

/// A CSV download named `filename`: `header`, then one line per row (CRLF line ends), streamed.
pub fn download<I>(filename: &str, header: &'static str, rows: I) -> Response
where
    I: IntoIterator<Item = Row>,
    I::IntoIter: Send + 'static,
{
    let body = Body::from_stream(futures_util::stream::iter(Chunks { header: Some(header), rows: rows.into_iter() }));
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_cells_are_quoted_when_needed_and_formulas_defused() {
        let cases = [
            ("prod", "prod"),
            ("a,b", "\"a,b\""),
            ("a;b", "\"a;b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("＝1+1", "'＝1+1"),
            ("=1,2", "\"'=1,2\""),
            // Only a leading character makes a formula.
            ("a=1", "a=1"),
        ];
        for (input, cell) in cases {
            assert_eq!(text(input), cell, "{input:?}");
        }
    }

    #[test]
    fn rows_and_chunks() {
        let row = Row::new().value(-5).text("=x").value("usd");
        assert_eq!(row.0, "-5,'=x,usd");
        let rows = (0..10_000).map(|i| Row::new().value(i).text("name"));
        let chunks: Vec<Bytes> = Chunks { header: Some("n,name"), rows }.map(|c| c.unwrap()).collect();
        assert!(chunks.len() > 1, "a large export is sent in several chunks");
        let all: String = chunks.iter().map(|c| std::str::from_utf8(c).unwrap()).collect();
        assert!(all.starts_with("n,name\r\n0,name\r\n"));
        assert_eq!(all.lines().count(), 10_001);
        let empty: Vec<_> = Chunks { header: Some("h"), rows: std::iter::empty() }.collect();
        assert_eq!(empty.len(), 1, "the header alone");
    }

    proptest! {
        #[test]
        fn no_text_cell_starts_a_formula(s in "\\PC{0,20}") {
            let cell = text(&s);
            let unquoted = cell.strip_prefix('"').unwrap_or(&cell);
            prop_assert!(!unquoted.starts_with(FORMULA_STARTS), "{cell:?}");
        }
    }
}
