//! Following a log file: complete new lines only, surviving truncation.

use super::*;

/// Follows a growing file line by line (like `tail -F`): survives the file not existing yet,
/// being truncated or recreated.
#[derive(Debug)]
pub(crate) struct LogTail {
    path: PathBuf,
    file: Option<File>,
    position: u64,
    partial: Vec<u8>,
}

impl LogTail {
    pub(crate) fn from_start(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            file: None,
            position: 0,
            partial: Vec::new(),
        }
    }

    pub(crate) fn from_end(path: &Path) -> Self {
        let position = std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0);
        Self {
            position,
            ..Self::from_start(path)
        }
    }

    /// The complete lines appended since the last call.
    pub(crate) fn poll(&mut self) -> Vec<String> {
        let length = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.len(),
            Err(_) => return Vec::new(),
        };
        if length < self.position {
            // Truncated or recreated: start over.
            self.file = None;
            self.position = 0;
            self.partial.clear();
        }
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(file) = self.file.as_mut() else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.position)).is_err() {
            self.file = None;
            return Vec::new();
        }
        let mut fresh = Vec::new();
        if file.read_to_end(&mut fresh).is_err() {
            self.file = None;
            return Vec::new();
        }
        self.position += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let mut lines = Vec::new();
        while let Some(newline) = self.partial.iter().position(|byte| *byte == b'\n') {
            let rest = self.partial.split_off(newline + 1);
            let line = std::mem::replace(&mut self.partial, rest);
            lines.push(String::from_utf8_lossy(&line).trim_end().to_owned());
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_tail_returns_only_complete_new_lines_and_survives_truncation() {
        // GIVEN a log with one line, followed from its end
        let dir = std::env::temp_dir().join(format!("monitor-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("functions.log");
        std::fs::write(&path, "old\n").expect("write");
        let mut tail = LogTail::from_end(&path);
        // WHEN a line and a half are appended THEN only the complete line comes back
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        write!(file, "one\ntw").expect("append");
        assert_eq!(tail.poll(), vec!["one".to_owned()]);
        writeln!(file, "o").expect("append");
        assert_eq!(tail.poll(), vec!["two".to_owned()]);
        // WHEN the file is recreated shorter THEN the tail starts over
        std::fs::write(&path, "x\n").expect("rewrite");
        assert_eq!(tail.poll(), vec!["x".to_owned()]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
