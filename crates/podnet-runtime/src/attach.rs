//! The attach socket of a container's supervisor (`kubectl attach`): a unix socket in the container's
//! state directory, served by the supervisor's poll loop next to the log copying.
//!
//! Protocol (one connection per attach session):
//! - supervisor to client: frames of `[kind: u8][length: u32 big-endian][payload]`; kind 1 is stdout,
//!   2 stderr (the container's output from the moment the client connected), 3 the exit (payload:
//!   the exit code in decimal), sent when the container's main process has ended.
//! - client to supervisor: frames of the same shape; kind 0 carries bytes for the container's stdin
//!   (used only when the container was created with `stdin`), kind 4 a terminal size (columns and
//!   rows, two 16-bit big-endian numbers; used only with `tty`). A half-close (`shutdown(SHUT_WR)`)
//!   ends this client's input, and with `stdin_once` the first client's end closes the container's
//!   stdin.
//!
//! The container never waits for a client: output for a client that does not read is buffered up
//! to [`MAX_CLIENT_BUFFER`], then that client is dropped. Input is taken from clients only while
//! the container reads its stdin (at most [`MAX_STDIN_BUFFER`] waits).

use nix::errno::Errno;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const STDIN: u8 = 0;
pub const RESIZE: u8 = 4;
/// Output buffered for one slow client before it is dropped.
pub const MAX_CLIENT_BUFFER: usize = 1 << 20;
/// Input buffered for a container that does not read its stdin.
pub const MAX_STDIN_BUFFER: usize = 64 * 1024;
/// At most this many attach sessions at once; more are refused (closed at once).
pub const MAX_CLIENTS: usize = 64;
/// The largest frame a client accepts.
pub const MAX_FRAME: usize = 1 << 20;

/// The attach socket of a container whose state directory is `state`.
pub fn socket_path(state: &Path) -> PathBuf {
    state.join("attach.sock")
}

/// A path to `file` in `dir` short enough for `sockaddr_un` (108 bytes), whatever the length of
/// `dir`: through an open descriptor of the directory, which the caller keeps while using the path.
pub fn short_path(dir: &Path, file: &str) -> std::io::Result<(OwnedFd, PathBuf)> {
    let d = std::fs::File::open(dir)?;
    let fd: OwnedFd = d.into();
    use std::os::fd::AsRawFd;
    let p = PathBuf::from(format!("/proc/self/fd/{}/{file}", fd.as_raw_fd()));
    Ok((fd, p))
}

/// Encodes one frame.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 5);
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Takes one whole frame off the front of `buf`, if there is one.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<(u8, Vec<u8>)>, String> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_FRAME {
        return Err(format!("attach frame of {len} bytes"));
    }
    if buf.len() < 5 + len {
        return Ok(None);
    }
    let kind = buf[0];
    let payload = buf[5..5 + len].to_vec();
    buf.drain(..5 + len);
    Ok(Some((kind, payload)))
}

struct Client {
    sock: UnixStream,
    out: Vec<u8>,
    /// Input not yet a whole frame.
    inbuf: Vec<u8>,
    /// The client may still send input.
    reading: bool,
}

/// The supervisor's side: the listener, its clients and the container's stdin.
pub struct Hub {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
    stdin: Option<OwnedFd>,
    stdin_buf: Vec<u8>,
    stdin_once: bool,
    input_ended: bool,
    /// The terminal's master, for resizes (containers with `tty`).
    tty: Option<OwnedFd>,
    /// For a `stdinOnce` container (`kubectl run -i`), the output framed before its first client
    /// came (bounded): that client gets it first. `kubectl run -i` attaches once it sees the pod
    /// Running, so a short command's output would otherwise be printed before anyone listened.
    replay: Option<Vec<u8>>,
    /// The replay has dropped a chunk: it keeps nothing after it.
    replay_full: bool,
}

/// How much early output a `stdinOnce` container keeps for its first client.
const MAX_REPLAY: usize = 64 * 1024;

/// What to poll for one descriptor of the hub.
pub struct Interest<'a> {
    pub fd: BorrowedFd<'a>,
    pub read: bool,
    pub write: bool,
}

impl Hub {
    /// Listens on [`socket_path`] of `state`; `stdin` is the write end of the container's stdin.
    pub fn bind(
        state: &Path,
        stdin: Option<OwnedFd>,
        stdin_once: bool,
        tty: Option<OwnedFd>,
    ) -> std::io::Result<Hub> {
        let path = socket_path(state);
        let _ = std::fs::remove_file(&path);
        let (_dir, short) = short_path(state, "attach.sock")?;
        let listener = UnixListener::bind(&short)?;
        listener.set_nonblocking(true)?;
        if let Some(fd) = &stdin {
            nix::fcntl::fcntl(
                fd.as_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .map_err(std::io::Error::from)?;
        }
        Ok(Hub {
            listener,
            path,
            clients: Vec::new(),
            stdin,
            stdin_buf: Vec::new(),
            stdin_once,
            input_ended: false,
            tty,
            replay: stdin_once.then(Vec::new),
            replay_full: false,
        })
    }

    /// The descriptors to poll, in the order [`Hub::ready`] expects their results.
    pub fn interests(&self) -> Vec<Interest<'_>> {
        let mut v = vec![Interest {
            fd: self.listener.as_fd(),
            read: true,
            write: false,
        }];
        if let Some(fd) = &self.stdin {
            v.push(Interest {
                fd: fd.as_fd(),
                read: false,
                write: !self.stdin_buf.is_empty(),
            });
        }
        let take_input = self.stdin_buf.len() < MAX_STDIN_BUFFER;
        for c in &self.clients {
            v.push(Interest {
                fd: c.sock.as_fd(),
                read: c.reading && take_input,
                write: !c.out.is_empty(),
            });
        }
        v
    }

    /// Acts on poll's answer: `ready[i]` is (readable or hung up, writable) for `interests()[i]`.
    pub fn ready(&mut self, ready: &[(bool, bool)]) {
        let mut i = 0;
        if ready.first().is_some_and(|r| r.0) {
            self.accept();
        }
        i += 1;
        if self.stdin.is_some() {
            if ready.get(i).is_some_and(|r| r.1) {
                self.flush_stdin();
            }
            i += 1;
        }
        let n = self.clients.len().min(ready.len().saturating_sub(i));
        let mut keep = vec![true; self.clients.len()];
        let mut buf = [0u8; 16 * 1024];
        for (k, r) in ready[i..i + n].iter().enumerate() {
            if r.0 && self.clients[k].reading {
                match self.clients[k].sock.read(&mut buf) {
                    Ok(0) => {
                        self.clients[k].reading = false;
                        self.client_input_ended();
                    }
                    Ok(m) => {
                        self.clients[k].inbuf.extend_from_slice(&buf[..m]);
                        if !self.take_input(k) {
                            keep[k] = false;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => keep[k] = false,
                }
            }
            if r.1 && !flush(&mut self.clients[k]) {
                keep[k] = false;
            }
        }
        let mut k = 0;
        self.clients.retain(|_| {
            k += 1;
            keep[k - 1]
        });
        if !self.stdin_buf.is_empty() {
            self.flush_stdin();
        }
    }

    fn accept(&mut self) {
        // A bounded number per round, so a flood of connections cannot starve the log copying.
        for _ in 0..16 {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if self.clients.len() >= MAX_CLIENTS || sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    // With stdin closed for good (stdinOnce used up), there is no input to take.
                    let reading = self.stdin.is_some();
                    self.clients.push(Client {
                        sock,
                        out: self.replay.take().unwrap_or_default(),
                        inbuf: Vec::new(),
                        reading,
                    });
                }
                Err(_) => return,
            }
        }
    }

    /// Acts on the whole frames client `k` has sent; false if it sent something malformed.
    fn take_input(&mut self, k: usize) -> bool {
        loop {
            match take_frame(&mut self.clients[k].inbuf) {
                Ok(Some((STDIN, d))) => {
                    if self.stdin.is_some() {
                        self.stdin_buf.extend_from_slice(&d);
                    }
                }
                Ok(Some((RESIZE, d))) if d.len() == 4 => {
                    if let Some(t) = &self.tty {
                        let cols = u16::from_be_bytes([d[0], d[1]]);
                        let rows = u16::from_be_bytes([d[2], d[3]]);
                        let _ = set_size(t, cols, rows);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    fn client_input_ended(&mut self) {
        if self.stdin_once && !self.input_ended {
            self.input_ended = true;
            self.flush_stdin();
            // What the container has not taken yet is dropped with its stdin, as on a real node.
            self.stdin = None;
            self.stdin_buf.clear();
            for c in &mut self.clients {
                c.reading = false;
            }
        }
    }

    fn flush_stdin(&mut self) {
        let Some(fd) = &self.stdin else { return };
        while !self.stdin_buf.is_empty() {
            match nix::unistd::write(fd, &self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    // The container closed its stdin: input goes nowhere from now on.
                    self.stdin = None;
                    self.stdin_buf.clear();
                    return;
                }
            }
        }
    }

    /// Sends output to every client; a client that has fallen too far behind is dropped.
    pub fn broadcast(&mut self, kind: u8, data: &[u8]) {
        if let Some(r) = &mut self.replay
            && !data.is_empty()
            && !self.replay_full
        {
            if r.len() + data.len() + 5 <= MAX_REPLAY {
                r.extend_from_slice(&frame(kind, data));
            } else {
                // Full: what is kept stays a clean prefix of the output (a later, smaller chunk
                // must not follow a dropped one), so recording stops for good.
                self.replay_full = true;
            }
        }
        if self.clients.is_empty() || data.is_empty() {
            return;
        }
        let f = frame(kind, data);
        self.clients.retain_mut(|c| {
            c.out.extend_from_slice(&f);
            c.out.len() <= MAX_CLIENT_BUFFER && flush(c)
        });
    }

    /// The container has exited: tells every client (best effort, without waiting long) and
    /// removes the socket.
    pub fn finish(mut self, exit_code: i32) {
        // Clients that connected while the last output was drained get it (if replayed) and the
        // exit, rather than a connection closed without a word.
        self.accept();
        let f = frame(EXIT, exit_code.to_string().as_bytes());
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        for c in &mut self.clients {
            c.out.extend_from_slice(&f);
        }
        while std::time::Instant::now() < deadline {
            self.clients.retain_mut(|c| flush(c) && !c.out.is_empty());
            if self.clients.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sets a terminal's size; its foreground process group gets SIGWINCH.
pub fn set_size(tty: &OwnedFd, cols: u16, rows: u16) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that outlives the call.
    if unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Writes what the client can take now; false if it is gone.
fn flush(c: &mut Client) -> bool {
    while !c.out.is_empty() {
        match c.sock.write(&c.out) {
            Ok(0) => return false,
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_whole_ones() {
        let mut b = frame(STDOUT, b"hello");
        b.extend(frame(EXIT, b"0"));
        let whole = b.clone();
        let mut part = whole[..7].to_vec();
        assert_eq!(take_frame(&mut part), Ok(None));
        assert_eq!(take_frame(&mut b), Ok(Some((STDOUT, b"hello".to_vec()))));
        assert_eq!(take_frame(&mut b), Ok(Some((EXIT, b"0".to_vec()))));
        assert_eq!(take_frame(&mut b), Ok(None));
        let mut huge = vec![1, 0xff, 0xff, 0xff, 0xff];
        assert!(take_frame(&mut huge).is_err());
    }

    fn poll_once(hub: &mut Hub) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let ints = hub.interests();
        let mut fds: Vec<PollFd> = ints
            .iter()
            .map(|i| {
                let mut f = PollFlags::empty();
                if i.read {
                    f |= PollFlags::POLLIN;
                }
                if i.write {
                    f |= PollFlags::POLLOUT;
                }
                PollFd::new(i.fd, f)
            })
            .collect();
        let _ = poll(&mut fds, PollTimeout::from(100u16));
        let r: Vec<(bool, bool)> = fds
            .iter()
            .map(|f| {
                let e = f.revents().unwrap_or(PollFlags::empty());
                (
                    e.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR),
                    e.contains(PollFlags::POLLOUT),
                )
            })
            .collect();
        drop(fds);
        drop(ints);
        hub.ready(&r);
    }

    fn read_frame(s: &mut UnixStream, buf: &mut Vec<u8>) -> (u8, Vec<u8>) {
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        loop {
            if let Some(f) = take_frame(buf).unwrap() {
                return f;
            }
            let mut b = [0u8; 4096];
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "attach socket closed");
            buf.extend_from_slice(&b[..n]);
        }
    }

    /// A chunk that does not fit the replay ends it: the first client never gets the early output
    /// with a hole in the middle (here: "begin", then "end" without the 8 KiB between them).
    #[test]
    fn the_replay_of_a_stdin_once_container_has_no_hole() {
        let dir = tempfile::tempdir().unwrap();
        let (_r, w) = nix::unistd::pipe().unwrap();
        let mut hub = Hub::bind(dir.path(), Some(w), true, None).unwrap();
        let begin = vec![b'b'; 60 * 1024];
        let middle = vec![b'm'; 8 * 1024];
        hub.broadcast(STDOUT, &begin);
        hub.broadcast(STDOUT, &middle);
        hub.broadcast(STDOUT, b"end\n");
        let (_d, p) = short_path(dir.path(), "attach.sock").unwrap();
        let mut a = UnixStream::connect(&p).unwrap();
        poll_once(&mut hub);
        hub.broadcast(STDOUT, b"live\n");
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            poll_once(&mut hub);
            let (kind, data) = read_frame(&mut a, &mut buf);
            assert_eq!(kind, STDOUT);
            got.extend_from_slice(&data);
            if got.ends_with(b"live\n") {
                break;
            }
        }
        let all = [&begin[..], &middle[..], b"end\n", b"live\n"].concat();
        // Either everything, or a prefix of the early output and then the live output: never a
        // later early chunk after a dropped one.
        let live_at = got.len() - b"live\n".len();
        assert!(
            all.starts_with(&got[..live_at]),
            "the replay skipped {} bytes and went on after them",
            middle.len()
        );
    }

    #[test]
    fn output_fans_out_input_reaches_stdin_and_stdin_once_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut hub = Hub::bind(dir.path(), Some(w), true, None).unwrap();
        let (_d, p) = short_path(dir.path(), "attach.sock").unwrap();
        let mut a = UnixStream::connect(&p).unwrap();
        let mut b = UnixStream::connect(&p).unwrap();
        poll_once(&mut hub);
        hub.broadcast(STDOUT, b"line\n");
        let (mut ba, mut bb) = (Vec::new(), Vec::new());
        assert_eq!(read_frame(&mut a, &mut ba), (STDOUT, b"line\n".to_vec()));
        assert_eq!(read_frame(&mut b, &mut bb), (STDOUT, b"line\n".to_vec()));
        a.write_all(&frame(STDIN, b"typ")).unwrap();
        a.write_all(&frame(RESIZE, &[0, 80, 0, 24])).unwrap();
        a.write_all(&frame(STDIN, b"ed")).unwrap();
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let mut stdin = std::fs::File::from(r);
        let mut got = Vec::new();
        for _ in 0..50 {
            poll_once(&mut hub);
            if hub.stdin.is_none() {
                break;
            }
        }
        // stdinOnce: the first client's end closed the container's stdin, after what it sent.
        stdin.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"typed");
        // A client that never reads does not block the others, and is dropped past the bound.
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..40 {
            hub.broadcast(STDERR, &chunk);
            poll_once(&mut hub);
        }
        assert!(hub.clients.len() < 2, "the stalled client is gone");
        hub.finish(3);
        assert!(!socket_path(dir.path()).exists());
    }
}
