//! CRI container logs: the on-disk format kubelet reads (`<RFC3339Nano> stdout|stderr F|P <line>`),
//! the writer the supervisor uses (line splitting, partial lines, rotation), and the reader behind
//! `kubectl logs` (tail, since, timestamps, limit-bytes, follow, previous).

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest line written as one entry; longer lines become `P` (partial) entries, as containerd's
/// default `max_container_log_line_size`.
pub const MAX_LINE: usize = 16 * 1024;
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_FILES: u32 = 5;
/// Readers look for rotated files up to this index (writers keep at most `max_files - 1`).
const MAX_SCAN: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// RFC 3339 UTC with nanoseconds (always nine digits, so entries also sort as text).
pub fn format_time(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let nanos = unix_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses what [`format_time`] writes, and RFC 3339 with fewer fraction digits or an offset.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        nanos = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
    }
    let offset = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let v = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if tz.starts_with('+') { v } else { -v }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec - offset) * 1_000_000_000) + nanos)
}

// Howard Hinnant's civil calendar algorithms (public domain).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One parsed log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time_ns: i64,
    pub stream: Stream,
    /// `false` for a `P` entry: the line continues in the next entry.
    pub full: bool,
    /// The content without the trailing newline.
    pub content: Vec<u8>,
}

pub fn parse_line(line: &[u8]) -> Option<Entry> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(Entry {
        time_ns: parse_time(ts)?,
        stream,
        full,
        content: parts.next().unwrap_or_default().to_vec(),
    })
}

/// Path of rotated file `n` (1 is the newest): `<log>.1`, `<log>.2`, ...
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The files of one log, oldest first, ending with the live file.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..=MAX_SCAN)
        .rev()
        .map(|n| rotated(path, n))
        .filter(|p| p.exists())
        .collect();
    out.push(path.to_path_buf());
    out
}

/// Appends CRI entries to a log file, rotating it at a size limit.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: u32,
}

impl LogWriter {
    pub fn open(path: &Path, max_bytes: u64, max_files: u32) -> Result<LogWriter> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(format!("open log {}", path.display()), e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes: if max_bytes == 0 {
                DEFAULT_MAX_BYTES
            } else {
                max_bytes
            },
            max_files: if max_files == 0 {
                DEFAULT_MAX_FILES
            } else {
                max_files.clamp(1, MAX_SCAN + 1)
            },
        })
    }

    /// Writes one entry (`content` without newline; `full` false for a partial line).
    pub fn write_entry(
        &mut self,
        time_ns: i64,
        stream: Stream,
        full: bool,
        content: &[u8],
    ) -> io::Result<()> {
        let mut rec = Vec::with_capacity(content.len() + 48);
        rec.extend_from_slice(format_time(time_ns).as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.as_str().as_bytes());
        rec.extend_from_slice(if full { b" F " } else { b" P " });
        rec.extend_from_slice(content);
        rec.push(b'\n');
        if self.size > 0 && self.size + rec.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&rec)?;
        self.size += rec.len() as u64;
        Ok(())
    }

    /// `<log>` becomes `<log>.1`, `.1` becomes `.2`, ...; the oldest beyond `max_files` goes.
    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let keep = self.max_files - 1;
        let _ = fs::remove_file(rotated(&self.path, keep));
        for n in (1..keep).rev() {
            let _ = fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
        }
        fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Splits one stream's bytes into entries: complete lines as `F`, runs longer than [`MAX_LINE`] as `P`.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit(full, content)` per entry.
    pub fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(bool, &[u8])) {
        while !data.is_empty() {
            match data.iter().position(|b| *b == b'\n') {
                Some(i) if self.buf.len() + i <= MAX_LINE => {
                    if self.buf.is_empty() {
                        emit(true, &data[..i]);
                    } else {
                        self.buf.extend_from_slice(&data[..i]);
                        emit(true, &self.buf);
                        self.buf.clear();
                    }
                    data = &data[i + 1..];
                }
                _ => {
                    let room = MAX_LINE - self.buf.len();
                    let take = room.min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.buf.len() == MAX_LINE {
                        emit(false, &self.buf);
                        self.buf.clear();
                    }
                }
            }
        }
    }

    /// At end of stream: an unterminated last line is written as a full entry.
    pub fn finish(&mut self, emit: &mut dyn FnMut(bool, &[u8])) {
        if !self.buf.is_empty() {
            emit(true, &self.buf);
            self.buf.clear();
        }
    }
}

/// What `kubectl logs` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last N lines (`--tail`).
    pub tail: Option<usize>,
    /// Only entries at or after this Unix time in ns (`--since`, `--since-time`).
    pub since_ns: Option<i64>,
    /// Prefix each line with its RFC 3339 time (`--timestamps`).
    pub timestamps: bool,
    /// Stop after this many bytes of output (`--limit-bytes`).
    pub limit_bytes: Option<u64>,
    /// Keep reading as the container writes (`-f`).
    pub follow: bool,
}

/// Collects entries into lines for output, honouring `timestamps` and the byte limit.
struct Out<'a> {
    w: &'a mut dyn Write,
    opts: &'a LogOptions,
    written: u64,
}

impl Out<'_> {
    /// Returns `false` once the byte limit is reached.
    fn entry(&mut self, e: &Entry) -> io::Result<bool> {
        let mut rec = Vec::with_capacity(e.content.len() + 40);
        if self.opts.timestamps {
            rec.extend_from_slice(format_time(e.time_ns).as_bytes());
            rec.push(b' ');
        }
        rec.extend_from_slice(&e.content);
        if e.full {
            rec.push(b'\n');
        }
        if let Some(limit) = self.opts.limit_bytes {
            let left = limit.saturating_sub(self.written) as usize;
            if rec.len() >= left {
                self.w.write_all(&rec[..left])?;
                self.written = limit;
                self.w.flush()?;
                return Ok(false);
            }
        }
        self.w.write_all(&rec)?;
        self.written += rec.len() as u64;
        Ok(true)
    }
}

/// Writes a container's log to `w` as `kubectl logs` shows it. With `follow`, keeps reading until
/// `done()` says the container has stopped (then drains what is left) or the byte limit is reached;
/// a rotation while following is noticed by the live file's inode changing.
pub fn read(
    path: &Path,
    opts: &LogOptions,
    w: &mut dyn Write,
    done: &dyn Fn() -> bool,
) -> Result<()> {
    let what = || format!("read log {}", path.display());
    let mut out = Out {
        w,
        opts,
        written: 0,
    };
    // Existing content: all files, oldest first; keep only what `tail` needs.
    let mut entries: std::collections::VecDeque<Entry> = Default::default();
    let mut lines = 0usize;
    let mut live_pos = 0u64;
    let mut live_ino = 0u64;
    let mut live: Option<File> = None;
    let all = files(path);
    for (i, f) in all.iter().enumerate() {
        let file = match File::open(f) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(what(), e)),
        };
        if i + 1 == all.len() {
            live_ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
            live = file.try_clone().ok();
        }
        let mut r = BufReader::new(file);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = r
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::io(what(), e))?;
            // A last line still being written (no newline yet) is left for the follow loop.
            if n == 0 || buf.last() != Some(&b'\n') {
                break;
            }
            if i + 1 == all.len() {
                live_pos += n as u64;
            }
            let Some(e) = parse_line(&buf) else { continue };
            if opts.since_ns.is_some_and(|s| e.time_ns < s) {
                continue;
            }
            if e.full {
                lines += 1;
            }
            entries.push_back(e);
            if let Some(t) = opts.tail {
                // Drop whole lines (a run of P entries and their F) from the front.
                while lines > t {
                    while let Some(front) = entries.pop_front() {
                        if front.full {
                            break;
                        }
                    }
                    lines -= 1;
                }
            }
        }
    }
    for e in &entries {
        if !out.entry(e).map_err(|e| Error::io(what(), e))? {
            return Ok(());
        }
    }
    out.w.flush().map_err(|e| Error::io(what(), e))?;
    if !opts.follow {
        return Ok(());
    }
    follow(path, live, live_pos, live_ino, &mut out, done).map_err(|e| Error::io(what(), e))
}

/// Follows the live file from `pos`. The open file is kept and read, not reopened by name: when the
/// pod is deleted its logs are removed right after its containers stop, and the last lines a
/// container wrote on SIGTERM must still reach the follower.
fn follow(
    path: &Path,
    mut cur: Option<File>,
    mut pos: u64,
    mut ino: u64,
    out: &mut Out<'_>,
    done: &dyn Fn() -> bool,
) -> io::Result<()> {
    let mut pending = Vec::new();
    let mut finishing = false;
    loop {
        let mut progressed = false;
        if let Ok(f) = File::open(path) {
            let meta = f.metadata()?;
            if meta.ino() != ino {
                // Rotated (maybe more than once since the last look): finish the file we were
                // reading, now `<log>.k`, then every newer rotated file, then start the live one.
                let was = (1..=MAX_SCAN).find(|&k| {
                    File::open(rotated(path, k))
                        .and_then(|f| f.metadata())
                        .is_ok_and(|m| m.ino() == ino)
                });
                if let Some(k) = was {
                    for n in (1..=k).rev() {
                        if let Ok(mut f) = File::open(rotated(path, n)) {
                            f.seek(SeekFrom::Start(if n == k { pos } else { 0 }))?;
                            f.read_to_end(&mut pending)?;
                        }
                    }
                }
                ino = meta.ino();
                pos = 0;
                cur = Some(f);
            } else if cur.is_none() {
                cur = Some(f);
            }
        }
        if let Some(f) = cur.as_mut() {
            f.seek(SeekFrom::Start(pos))?;
            let n = f.read_to_end(&mut pending)?;
            pos += n as u64;
            progressed = n > 0;
        }
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            if let Some(e) = parse_line(&line)
                && out.opts.since_ns.is_none_or(|s| e.time_ns >= s)
                && !out.entry(&e)?
            {
                return Ok(());
            }
        }
        out.w.flush()?;
        if finishing && !progressed {
            return Ok(());
        }
        if !progressed {
            // Read once more after the container stopped: the supervisor writes its last lines
            // before it records the exit.
            finishing = done();
            if !finishing {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// kubelet's layout for a pod's logs: `<pod log dir>/<container>/<attempt>.log`.
pub fn container_log_path(pod_log_dir: &Path, container: &str, attempt: u32) -> PathBuf {
    pod_log_dir.join(container).join(format!("{attempt}.log"))
}

/// The log of the previous instance of a container (`kubectl logs --previous`): the highest attempt
/// below `current` whose log still exists.
pub fn previous_log_path(pod_log_dir: &Path, container: &str, current: u32) -> Option<PathBuf> {
    (0..current)
        .rev()
        .map(|a| container_log_path(pod_log_dir, container, a))
        .find(|p| p.exists())
}

/// Removes a log and its rotated files.
pub fn remove(path: &Path) -> Result<()> {
    for f in files(path) {
        match fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("remove log {}", f.display()), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_match_known_dates() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000000000Z");
        // 2016-10-06T00:17:09.669794202Z, the example in the CRI logging design.
        let t = 1_475_713_029_669_794_202;
        assert_eq!(format_time(t), "2016-10-06T00:17:09.669794202Z");
        assert_eq!(parse_time("2016-10-06T00:17:09.669794202Z"), Some(t));
        assert_eq!(parse_time("2016-10-06T00:17:09.6697942Z"), Some(t - 2));
        assert_eq!(
            parse_time("2016-10-06T02:17:09+02:00"),
            Some(1_475_713_029_000_000_000)
        );
        assert_eq!(
            format_time(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(parse_time("garbage"), None);
    }

    #[test]
    fn splitter_emits_full_and_partial_entries() {
        let mut s = LineSplitter::default();
        let mut got: Vec<(bool, Vec<u8>)> = Vec::new();
        let mut emit = |f: bool, c: &[u8]| got.push((f, c.to_vec()));
        s.feed(b"one\ntw", &mut emit);
        s.feed(b"o\n", &mut emit);
        let long = vec![b'x'; MAX_LINE + 10];
        s.feed(&long, &mut emit);
        s.feed(b"\nlast", &mut emit);
        s.finish(&mut emit);
        assert_eq!(got[0], (true, b"one".to_vec()));
        assert_eq!(got[1], (true, b"two".to_vec()));
        assert!(!got[2].0);
        assert_eq!(got[2].1.len(), MAX_LINE);
        assert_eq!(got[3], (true, vec![b'x'; 10]));
        assert_eq!(got[4], (true, b"last".to_vec()));
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pnt-crilog-{}-{}",
            std::process::id(),
            crate::records::new_id().unwrap()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn read_all(path: &Path, opts: LogOptions) -> String {
        let mut out = Vec::new();
        read(path, &opts, &mut out, &|| true).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writer_rotates_and_reader_sees_all_files_in_order_with_options() {
        let d = dir();
        let _rm = Rm(d.clone());
        let log = d.join("c/0.log");
        let mut w = LogWriter::open(&log, 200, 3).unwrap();
        for i in 0..20 {
            let stream = if i % 2 == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            w.write_entry(
                1_000_000_000 * (i + 1),
                stream,
                true,
                format!("line {i}").as_bytes(),
            )
            .unwrap();
        }
        w.write_entry(30_000_000_000, Stream::Stdout, false, b"par")
            .unwrap();
        w.write_entry(30_000_000_001, Stream::Stdout, true, b"tial")
            .unwrap();
        assert!(rotated(&log, 1).exists() && rotated(&log, 2).exists());
        assert!(!rotated(&log, 3).exists(), "only max_files files are kept");
        let all = read_all(&log, LogOptions::default());
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines.last(), Some(&"partial"));
        let nums: Vec<i32> = lines[..lines.len() - 1]
            .iter()
            .map(|l| l[5..].parse().unwrap())
            .collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        assert_eq!(*nums.last().unwrap(), 19);
        let tail = read_all(
            &log,
            LogOptions {
                tail: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(tail, "line 19\npartial\n");
        let since = read_all(
            &log,
            LogOptions {
                since_ns: Some(19_000_000_000),
                ..Default::default()
            },
        );
        assert_eq!(since, "line 18\nline 19\npartial\n");
        let ts = read_all(
            &log,
            LogOptions {
                tail: Some(1),
                timestamps: true,
                ..Default::default()
            },
        );
        assert_eq!(
            ts,
            "1970-01-01T00:00:30.000000000Z par1970-01-01T00:00:30.000000001Z tial\n"
        );
        let limited = read_all(
            &log,
            LogOptions {
                tail: Some(2),
                limit_bytes: Some(10),
                ..Default::default()
            },
        );
        assert_eq!(limited, "line 19\npa");
    }

    #[test]
    fn follow_reads_lines_written_later_until_done() {
        let d = dir();
        let _rm = Rm(d.clone());
        let log = d.join("0.log");
        // Up to four rotated files are kept, so rotations between two looks lose nothing.
        let mut w = LogWriter::open(&log, 120, 5).unwrap();
        w.write_entry(1, Stream::Stdout, true, b"before").unwrap();
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f2 = flag.clone();
        let writer = std::thread::spawn(move || {
            for i in 0..6 {
                std::thread::sleep(Duration::from_millis(30));
                w.write_entry(
                    2 + i,
                    Stream::Stdout,
                    true,
                    format!("after {i} padding padding").as_bytes(),
                )
                .unwrap();
            }
            f2.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut out = Vec::new();
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        read(&log, &opts, &mut out, &|| {
            flag.load(std::sync::atomic::Ordering::SeqCst)
        })
        .unwrap();
        writer.join().unwrap();
        let text = String::from_utf8(out).unwrap();
        let expect: String = std::iter::once("before\n".to_string())
            .chain((0..6).map(|i| format!("after {i} padding padding\n")))
            .collect();
        assert_eq!(text, expect);
    }

    #[test]
    fn follow_gets_the_last_lines_of_a_log_removed_right_after_them() {
        let d = dir();
        let _rm = Rm(d.clone());
        let log = d.join("0.log");
        let mut w = LogWriter::open(&log, 0, 0).unwrap();
        w.write_entry(1, Stream::Stdout, true, b"waiting").unwrap();
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (f2, o2, log2) = (flag.clone(), out.clone(), log.clone());
        let reader = std::thread::spawn(move || {
            let opts = LogOptions {
                follow: true,
                ..Default::default()
            };
            read(&log2, &opts, &mut Shared(o2), &|| {
                f2.load(std::sync::atomic::Ordering::SeqCst)
            })
            .unwrap();
        });
        let start = std::time::Instant::now();
        while out.lock().unwrap().is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The container's last words, its exit, and the pod's logs removed, between two looks.
        w.write_entry(2, Stream::Stdout, true, b"got SIGTERM")
            .unwrap();
        drop(w);
        fs::remove_file(&log).unwrap();
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        reader.join().unwrap();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "waiting\ngot SIGTERM\n");
    }

    #[test]
    fn previous_instance_is_the_highest_older_attempt() {
        let d = dir();
        let _rm = Rm(d.clone());
        for a in [0, 2] {
            let p = container_log_path(&d, "web", a);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, "").unwrap();
        }
        assert_eq!(
            previous_log_path(&d, "web", 3),
            Some(container_log_path(&d, "web", 2))
        );
        assert_eq!(
            previous_log_path(&d, "web", 2),
            Some(container_log_path(&d, "web", 0))
        );
        assert_eq!(previous_log_path(&d, "web", 0), None);
    }
}
