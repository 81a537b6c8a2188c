//! Line numbers and the original text of a record, kept while the [`super::reader`] consumes
//! its bytes: shared by the CSV and NDJSON readers, so that a bad row names the file's line.

use super::reader::MAX_RAW_BYTES;

/// The number of the line being read (1-based): a line ends at `\n`, `\r\n` or a lone `\r`,
/// inside a quoted CSV cell too (they are lines of the file).
#[derive(Debug, Clone, Copy)]
pub(super) struct Lines {
    line: u64,
    after_cr: bool,
}

impl Default for Lines {
    fn default() -> Self {
        Lines { line: 1, after_cr: false }
    }
}

impl Lines {
    pub(super) fn current(&self) -> u64 {
        self.line
    }

    pub(super) fn step(&mut self, byte: u8) {
        match byte {
            b'\n' if self.after_cr => {}
            b'\n' | b'\r' => self.line += 1,
            _ => {}
        }
        self.after_cr = byte == b'\r';
    }
}

/// The first [`MAX_RAW_BYTES`] of a record's original bytes.
#[derive(Debug, Default)]
pub(super) struct Raw(Vec<u8>);

impl Raw {
    /// Keeps what still fits of `bytes` (a few bytes more than the cap, so that the text can be
    /// cut at a character boundary).
    pub(super) fn keep(&mut self, bytes: &[u8]) {
        let room = (MAX_RAW_BYTES + 4).saturating_sub(self.0.len());
        self.0.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    /// The text kept, its line break dropped, lossily decoded and capped at [`MAX_RAW_BYTES`];
    /// the buffer is emptied for the next record.
    pub(super) fn take(&mut self) -> String {
        let bytes = std::mem::take(&mut self.0);
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        capped(String::from_utf8_lossy(trimmed).into_owned())
    }
}

/// `text` cut to at most [`MAX_RAW_BYTES`], at a character boundary.
pub(super) fn capped(mut text: String) -> String {
    let mut end = MAX_RAW_BYTES.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// At most 64 characters of caller input, to quote inside a reason.
pub(super) fn quoted(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(text: &[u8]) -> u64 {
        let mut lines = Lines::default();
        text.iter().for_each(|&b| lines.step(b));
        lines.current()
    }

    #[test]
    fn lines_end_at_lf_crlf_or_a_lone_cr() {
        assert_eq!(count(b""), 1);
        assert_eq!(count(b"a\nb\r\nc\rd"), 4);
        assert_eq!(count(b"\r\n\r\n"), 3);
        assert_eq!(count(b"\n\r"), 3);
    }

    #[test]
    fn raw_text_is_capped_at_a_character_boundary() {
        let mut raw = Raw::default();
        raw.keep("é".repeat(MAX_RAW_BYTES).as_bytes());
        let text = raw.take();
        assert_eq!(text.len(), MAX_RAW_BYTES);
        assert!(raw.take().is_empty());
        raw.keep(b"a,b\r\n");
        assert_eq!(raw.take(), "a,b");
        let odd = format!("{}é", "a".repeat(MAX_RAW_BYTES - 1));
        assert_eq!(capped(odd).len(), MAX_RAW_BYTES - 1);
    }
}
