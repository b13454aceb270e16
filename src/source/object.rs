//! One object of an [`ObjectStore`] read in place as a layer ([`ObjectReader`]): a LUKS or qcow2
//! image kept in a Swift container, an S3 bucket or Glance is probed and decrypted by range
//! requests, never downloaded whole.
//!
//! Reads go by ranges kept in memory (the most recent), so a probe's many small header reads
//! cost one request. A reader that twice goes on where the last range ended is streaming, and each
//! request costs a round trip (Glance: ~20 ms) whatever its size: its ranges then double, up to
//! [`MAX_WINDOW`], and the next ranges are fetched in the background while this one is read (the
//! kernel's readahead, over HTTP). Several streams are followed at once ([`STREAMS`]: `verify`
//! hashes the ciphertext in one thread while others decrypt it, at other offsets), each with its
//! own window. A random reader keeps fetching [`BLOCK`]s.
//!
//! A store that can hand over a body as it arrives ([`ObjectStore::streams_ranges`]: Glance,
//! which serves one request at a time, so that every request costs its whole round trip) gets
//! one request per stream instead: a pipe thread reads the rest of the object from one GET in
//! [`PIECE`]s, at most [`PIPE_AHEAD`] ahead of the stream's reader (further, the connection
//! waits: TCP's own flow control), and closes it when the reader stays behind for
//! [`PIPE_IDLE`]: a server that serves one request at a time would serve no other meanwhile,
//! not even this reader's next one. The stream goes on by a miss and a new pipe.

use super::ObjectStore;
use crate::io::{ReadAt, past_end, within};
use crate::{Error, Result};
use std::sync::{Arc, Condvar, Mutex};

/// Bytes fetched per range request by a random reader (and the first of a stream).
pub const BLOCK: u64 = 1 << 20;
/// Largest range a streaming reader fetches at once.
pub const MAX_WINDOW: u64 = 16 << 20;
/// Ranges a stream fetches ahead at once (one connection each: an HTTP client reads one
/// connection far slower than a store serves several).
const AHEAD: usize = 3;
/// Streams followed at once; a miss that continues none of them starts a new one in place of
/// the least recently used.
pub const STREAMS: usize = 3;
/// Bytes of ranges kept (the most recently used): for each of two streams, the range being read
/// and those fetched ahead.
const KEPT_BYTES: u64 = 2 * (AHEAD as u64 + 2) * MAX_WINDOW;
/// Where a stream's streak stops counting (it sets how far ahead it is read: see
/// [`pipe_allowance`]).
const MAX_STREAK: u32 = 8;

/// How far ahead of its reader a pipe may read for a stream of `streak` ranges: one piece at
/// first (a probe that read a header and what follows is no stream yet), doubling as the stream
/// goes on, up to [`PIPE_AHEAD`].
fn pipe_allowance(streak: u32) -> u64 {
    PIPE_AHEAD.min(PIECE << streak.saturating_sub(2).min(8))
}

/// What a pipe reads at a time.
pub const PIECE: u64 = 4 << 20;
/// How far a pipe may run ahead of its stream's reader.
pub const PIPE_AHEAD: u64 = 32 << 20;
/// How long a pipe waits for its reader to come near before it closes its connection.
pub const PIPE_IDLE: std::time::Duration = std::time::Duration::from_millis(250);

/// A fetched range of the object.
struct Range {
    start: u64,
    data: Arc<Vec<u8>>,
}

impl Range {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

/// One sequential reader's progress.
#[derive(Clone, Copy)]
struct Stream {
    /// Tells the stream apart from the one that may later take its slot.
    id: u64,
    /// Where its next miss would start, and its window.
    next: u64,
    window: u64,
    /// Ranges in a row that went on where the previous one ended (fetched on a miss, or ahead
    /// and then read): a stream from the second (a probe reading a header and then what follows
    /// it is not one).
    streak: u32,
    /// The end of the furthest range its readers are in (or wait for).
    reading: u64,
    /// A pipe thread brings its bytes (from `next` on).
    piped: bool,
    /// When it was last used (a counter).
    used: u64,
}

#[derive(Default)]
struct State {
    /// Most recently used last.
    recent: Vec<Range>,
    streams: Vec<Stream>,
    /// Counts misses and hits, to order the streams by use; and gives streams their ids.
    clock: u64,
    /// Ranges being fetched (by a reader, or ahead): readers needing them wait.
    pending: Vec<(u64, u64)>,
    /// Ranges being fetched ahead.
    ahead: usize,
    /// The reader is gone: pipes stop.
    closed: bool,
}

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The stream a miss at `pos` continues: it goes on where that stream's last range ended, or
    /// just after it (the threads of one reader arrive a little out of order).
    fn continued(&self, pos: u64) -> Option<usize> {
        self.streams.iter().position(|s| s.next > 0 && pos >= s.next && pos - s.next < BLOCK)
    }

    /// The piped stream whose pipe will soon bring byte `pos`: within what it reads ahead
    /// anyway (further on is a miss: the pipe would read everything in between).
    fn piping(&self, pos: u64) -> Option<usize> {
        self.streams.iter().position(|s| s.piped && pos >= s.next && pos - s.next < pipe_allowance(s.streak))
    }

    fn stream(&mut self, id: u64) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    /// A new stream in a free slot, or in the least recently used one.
    fn start_stream(&mut self) -> usize {
        let id = self.tick();
        let s = Stream { id, next: 0, window: BLOCK, streak: 0, reading: 0, piped: false, used: id };
        if self.streams.len() < STREAMS {
            self.streams.push(s);
            return self.streams.len() - 1;
        }
        let i = (0..self.streams.len()).min_by_key(|&i| self.streams[i].used).unwrap_or(0);
        self.streams[i] = s;
        i
    }
}

/// One object, read by range.
pub struct ObjectReader {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn ObjectStore>,
    name: String,
    size: u64,
    state: Mutex<State>,
    /// Signalled when a range fetched ahead lands (or fails).
    landed: Condvar,
    /// Signalled when a stream's reader moves on (a pipe waiting for it may go on).
    consumed: Condvar,
    /// The store hands over bodies as they arrive: streams are piped.
    pipes: bool,
}

impl ObjectReader {
    /// Object `name` of `store`, `size` bytes long (as the store's listing says).
    pub fn new(store: Arc<dyn ObjectStore>, name: &str, size: u64) -> ObjectReader {
        ObjectReader {
            shared: Arc::new(Shared {
                pipes: store.streams_ranges(),
                store,
                name: name.to_string(),
                size,
                state: Mutex::new(State::default()),
                landed: Condvar::new(),
                consumed: Condvar::new(),
            }),
        }
    }

    /// The object's name in its store.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The range holding byte `pos`: kept, being fetched (waited for), or fetched now.
    fn range_at(&self, pos: u64) -> Result<(u64, Arc<Vec<u8>>)> {
        let sh = &self.shared;
        let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(i) = st.recent.iter().position(|r| r.start <= pos && pos < r.end()) {
                let r = st.recent.remove(i);
                let (found, start, end) = ((r.start, r.data.clone()), r.start, r.end());
                st.recent.push(r);
                // reading on into a range a stream fetched (not a probe's first block): keep
                // its next ones coming
                let ahead = (AHEAD as u64 * MAX_WINDOW).max(PIPE_AHEAD + PIECE);
                if let Some(s) = st.streams.iter().position(|s| s.streak >= 2 && end <= s.next && s.next - end <= ahead)
                {
                    let now = st.tick();
                    let stream = &mut st.streams[s];
                    stream.used = now;
                    if end > stream.reading {
                        // the stream goes on only into the range after the one it read last (a
                        // probe's jump forward moves the reader, and earns no longer reach)
                        if start == stream.reading {
                            stream.streak = (stream.streak + 1).min(MAX_STREAK);
                        }
                        stream.reading = end;
                        sh.consumed.notify_all();
                    }
                    self.feed(&mut st, s);
                }
                return Ok(found);
            }
            if st.pending.iter().any(|&(a, b)| a <= pos && pos < b) {
                st = sh.landed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            if let Some(s) = st.piping(pos) {
                // its pipe brings it: say how far the reader is, and wait
                let stream = &mut st.streams[s];
                if pos > stream.reading {
                    stream.reading = pos;
                    sh.consumed.notify_all();
                }
                st = sh.landed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            break;
        }
        // A miss: it continues a stream (fetch from where that stream ended, with a doubled
        // window), or starts one (a block; a probe jumping from header to header never grows one).
        let (s, start, window) = match st.continued(pos) {
            Some(s) => {
                let stream = &mut st.streams[s];
                stream.streak = (stream.streak + 1).min(MAX_STREAK);
                stream.window = (stream.window * 2).min(MAX_WINDOW);
                (s, stream.next, stream.window)
            }
            None => {
                let s = st.start_stream();
                (s, pos - pos % BLOCK, BLOCK)
            }
        };
        let len = window.min(sh.size - start);
        st.pending.push((start, start + len));
        let now = st.tick();
        let stream = &mut st.streams[s];
        stream.next = stream.next.max(start + len);
        stream.reading = start + len;
        stream.used = now;
        let id = stream.id;
        drop(st);
        let got = sh.fetch(start, len).map(Arc::new);
        let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        st.pending.retain(|&p| p != (start, start + len));
        let data = match got {
            Ok(d) => d,
            Err(e) => {
                sh.landed.notify_all();
                return Err(e);
            }
        };
        keep(&mut st, Range { start, data: data.clone() });
        sh.landed.notify_all();
        if let Some(s) = st.streams.iter().position(|s| s.id == id && s.streak >= 2) {
            self.feed(&mut st, s);
        }
        Ok((start, data))
    }

    /// Keep stream `s`'s next bytes coming: its pipe (started now if it has none), or windows
    /// fetched ahead.
    fn feed(&self, st: &mut State, s: usize) {
        if !self.shared.pipes {
            return self.fetch_ahead(st, s);
        }
        let stream = &mut st.streams[s];
        if stream.piped || stream.next >= self.shared.size {
            return;
        }
        stream.piped = true;
        let (id, from) = (stream.id, stream.next);
        let sh = self.shared.clone();
        let spawned = std::thread::Builder::new().name("object-pipe".into()).spawn(move || sh.pipe(id, from));
        if spawned.is_err() {
            st.streams[s].piped = false;
            self.fetch_ahead(st, s);
        }
    }

    /// Keep stream `s`'s next windows coming in the background: up to [`AHEAD`] windows ahead of
    /// the range its reader is in (fewer while the stream is young), at most [`AHEAD`] requests
    /// in flight for all streams.
    fn fetch_ahead(&self, st: &mut State, s: usize) {
        // one window ahead at first, more as the stream goes on
        let limit = AHEAD.min(st.streams[s].streak.saturating_sub(1) as usize);
        loop {
            let stream = &st.streams[s];
            let short = stream.next - stream.reading < limit as u64 * stream.window;
            if !(short && st.ahead < limit && stream.next < self.shared.size && self.fetch_one_ahead(st, s)) {
                break;
            }
        }
    }

    /// Start fetching stream `s`'s next window; false when no thread could be started.
    fn fetch_one_ahead(&self, st: &mut State, s: usize) -> bool {
        let stream = &mut st.streams[s];
        let (id, start) = (stream.id, stream.next);
        stream.window = (stream.window * 2).min(MAX_WINDOW);
        let len = stream.window.min(self.shared.size - start);
        stream.next = start + len;
        st.ahead += 1;
        st.pending.push((start, start + len));
        let sh = self.shared.clone();
        let spawned = std::thread::Builder::new().name("object-ahead".into()).spawn(move || {
            // a failure is not reported here: the read that needs the range fetches it again
            let got = sh.fetch(start, len);
            let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
            st.ahead -= 1;
            st.pending.retain(|&p| p != (start, start + len));
            match got {
                Ok(data) => keep(&mut st, Range { start, data: Arc::new(data) }),
                Err(e) => {
                    log::debug!("{e} (fetching ahead)");
                    if let Some(s) = st.streams.iter_mut().find(|s| s.id == id) {
                        s.next = s.next.min(start);
                    }
                }
            }
            sh.landed.notify_all();
        });
        if spawned.is_err() {
            st.ahead -= 1;
            st.pending.retain(|&p| p != (start, start + len));
            st.streams[s].next = start;
            return false;
        }
        true
    }
}

/// Keep range `r` (the most recently used), dropping the least recently used beyond
/// [`KEPT_BYTES`].
fn keep(st: &mut State, r: Range) {
    let mut bytes: u64 = st.recent.iter().map(|r| r.data.len() as u64).sum::<u64>() + r.data.len() as u64;
    while bytes > KEPT_BYTES && !st.recent.is_empty() {
        bytes -= st.recent.remove(0).data.len() as u64;
    }
    st.recent.push(r);
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.shared.consumed.notify_all();
        self.shared.landed.notify_all();
    }
}

impl Shared {
    /// The pipe of stream `id`: the object from `pos` to its end by one request, read in
    /// [`PIECE`]s as the stream's reader comes near, each kept as a range. It ends at the end,
    /// on a failure (the reads that need the bytes fetch them themselves and report it), when
    /// its stream is replaced, or when its reader stays behind for [`PIPE_IDLE`].
    fn pipe(&self, id: u64, mut pos: u64) {
        use std::io::Read;
        let end = self.size;
        let mut body = match self.store.open_range(&self.name, pos, end - pos) {
            Ok(Some(b)) => Some(b),
            Ok(None) => None,
            Err(e) => {
                log::debug!("object {}: {e} (opening a stream at {pos})", self.name);
                None
            }
        };
        while let Some(reader) = body.as_mut() {
            let n = PIECE.min(end - pos);
            {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let since = std::time::Instant::now();
                loop {
                    let closed = st.closed;
                    let Some(s) = st.stream(id) else { return };
                    if pos.saturating_sub(s.reading) < pipe_allowance(s.streak) && !closed {
                        break;
                    }
                    let left = PIPE_IDLE.saturating_sub(since.elapsed());
                    if closed || left.is_zero() {
                        // the bytes up to `pos` are kept: the stream goes on from there
                        s.piped = false;
                        self.landed.notify_all();
                        return;
                    }
                    st = self.consumed.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0;
                }
                st.pending.push((pos, pos + n));
            }
            let mut data = vec![0u8; n as usize];
            let got = reader.read_exact(&mut data);
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.pending.retain(|&p| p != (pos, pos + n));
            if let Err(e) = got {
                log::debug!("object {}: {e} (reading a stream at {pos})", self.name);
                body = None;
            } else {
                keep(&mut st, Range { start: pos, data: Arc::new(data) });
                pos += n;
                if let Some(s) = st.stream(id) {
                    s.next = s.next.max(pos);
                }
                if pos >= end {
                    body = None;
                }
            }
            if body.is_none()
                && let Some(s) = st.stream(id)
            {
                s.piped = false;
                s.next = s.next.min(pos);
            }
            self.landed.notify_all();
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = st.stream(id) {
            s.piped = false;
            s.next = s.next.min(pos);
        }
        self.landed.notify_all();
    }

    fn fetch(&self, start: u64, len: u64) -> Result<Vec<u8>> {
        let what = || format!("object {} of {}", self.name, self.store.describe());
        let len = usize::try_from(len).map_err(|_| Error::unsupported(format!("{}: range too large", what())))?;
        let data = self
            .store
            .get_range(&self.name, start, len)
            .map_err(|e| e.context(what()))?
            .ok_or_else(|| Error::corrupt(format!("{} is gone (it was listed)", what())))?;
        if data.len() != len {
            return Err(Error::corrupt(format!("{}: {} bytes at {start} instead of {len}", what(), data.len())));
        }
        Ok(data)
    }
}

impl ReadAt for ObjectReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if !within(offset, buf.len(), self.shared.size) {
            return Err(past_end(&format!("object {}", self.shared.name), offset, buf.len(), self.shared.size));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (start, data) = self.range_at(pos)?;
            let at = (pos - start) as usize;
            let n = (data.len() - at).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&data[at..at + n]);
            done += n;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.shared.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemStore;

    fn object(len: u64) -> (Arc<MemStore>, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut m = MemStore::default();
        m.objects.insert("img".into(), data.clone());
        (Arc::new(m), data)
    }

    #[test]
    fn reads_across_ranges_and_refuses_past_the_end() {
        let (m, data) = object(3 * BLOCK + 17);
        let r = ObjectReader::new(m, "img", data.len() as u64);
        for (off, len) in [(0u64, 10usize), (BLOCK - 5, 10), (BLOCK * 2 - 1, BLOCK as usize + 2), (3 * BLOCK, 17)] {
            let mut b = vec![0u8; len];
            r.read_exact_at(&mut b, off).unwrap();
            assert_eq!(b, data[off as usize..off as usize + len]);
        }
        let mut b = vec![0u8; 18];
        assert_eq!(r.read_exact_at(&mut b, 3 * BLOCK).unwrap_err().kind(), crate::ErrorKind::Corrupt);
    }

    #[test]
    fn a_stream_reads_every_byte_in_order_with_ranges_fetched_ahead() {
        let (m, data) = object(100 * BLOCK + 12345);
        let r = ObjectReader::new(m, "img", data.len() as u64);
        let mut got = Vec::with_capacity(data.len());
        let mut off = 0u64;
        while off < data.len() as u64 {
            let n = (128 << 10).min(data.len() as u64 - off) as usize;
            let mut b = vec![0u8; n];
            r.read_exact_at(&mut b, off).unwrap();
            got.extend_from_slice(&b);
            off += n as u64;
        }
        assert!(got == data, "the stream differs");
        assert_eq!(r.shared.state.lock().unwrap().streams[0].window, MAX_WINDOW);
        // and random reads after it
        for off in [5 * BLOCK + 3, 77, 99 * BLOCK] {
            let mut b = vec![0u8; 4096];
            r.read_exact_at(&mut b, off).unwrap();
            assert_eq!(b, data[off as usize..off as usize + 4096]);
        }
    }

    /// A store that counts its range requests.
    struct Counting(Arc<MemStore>, std::sync::atomic::AtomicUsize);

    impl ObjectStore for Counting {
        fn describe(&self) -> String {
            self.0.describe()
        }
        fn list_sized(&self, prefix: &str) -> Result<Vec<crate::source::Listed>> {
            self.0.list_sized(prefix)
        }
        fn get(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
            self.0.get(name, max)
        }
        fn get_range(&self, name: &str, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.get_range(name, offset, len)
        }
    }

    /// Two sequential readers at different offsets (`verify` hashing the ciphertext while
    /// decrypting it) are two streams, each with its growing window: a few large ranges, not a
    /// block per read.
    #[test]
    fn two_interleaved_streams_each_grow_their_window() {
        let (m, data) = object(120 * BLOCK);
        let store = Arc::new(Counting(m, Default::default()));
        let r = ObjectReader::new(store.clone(), "img", data.len() as u64);
        let (mut a, mut b) = (0u64, 60 * BLOCK);
        let mut buf = vec![0u8; 128 << 10];
        while a < 48 * BLOCK {
            for at in [&mut a, &mut b] {
                r.read_exact_at(&mut buf, *at).unwrap();
                assert!(buf == data[*at as usize..*at as usize + buf.len()], "bytes at {at}");
                *at += buf.len() as u64;
            }
        }
        let requests = store.1.load(std::sync::atomic::Ordering::Relaxed);
        assert!(requests <= 24, "{requests} range requests for two 48 MiB streams");
    }

    /// A store that hands over bodies as they arrive, counting its requests; its bodies break
    /// after `breaks_after` bytes when that is set.
    struct Piping {
        mem: Arc<MemStore>,
        opened: std::sync::atomic::AtomicUsize,
        ranges: std::sync::atomic::AtomicUsize,
        breaks_after: Option<u64>,
    }

    impl ObjectStore for Piping {
        fn describe(&self) -> String {
            self.mem.describe()
        }
        fn list_sized(&self, prefix: &str) -> Result<Vec<crate::source::Listed>> {
            self.mem.list_sized(prefix)
        }
        fn get(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>> {
            self.mem.get(name, max)
        }
        fn get_range(&self, name: &str, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
            self.ranges.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.mem.get_range(name, offset, len)
        }
        fn open_range(&self, name: &str, offset: u64, len: u64) -> Result<Option<crate::source::RangeReader>> {
            use std::io::Read;
            self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let v = self.mem.get_range(name, offset, len as usize)?.unwrap();
            let cut = self.breaks_after.map_or(v.len(), |n| (n as usize).min(v.len()));
            let broken = std::io::repeat(0).take(0).chain(std::io::Cursor::new(v[..cut].to_vec()));
            Ok(Some(Box::new(broken.chain(Failing))))
        }
        fn streams_ranges(&self) -> bool {
            true
        }
    }

    /// A body that fails where it ends early.
    struct Failing;

    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("connection reset"))
        }
    }

    fn piping(len: u64, breaks_after: Option<u64>) -> (Arc<Piping>, ObjectReader, Vec<u8>) {
        let (mem, data) = object(len);
        let store = Arc::new(Piping { mem, opened: Default::default(), ranges: Default::default(), breaks_after });
        let r = ObjectReader::new(store.clone(), "img", len);
        (store, r, data)
    }

    fn stream_all(r: &ObjectReader, data: &[u8]) {
        let mut off = 0u64;
        let mut b = vec![0u8; 128 << 10];
        while off < data.len() as u64 {
            let n = (b.len() as u64).min(data.len() as u64 - off) as usize;
            r.read_exact_at(&mut b[..n], off).unwrap();
            assert!(b[..n] == data[off as usize..off as usize + n], "bytes at {off}");
            off += n as u64;
        }
    }

    /// A store that streams bodies gets one request for a stream (after the first blocks that
    /// tell a stream from a probe), whatever its length.
    #[test]
    fn a_piped_stream_is_one_request() {
        use std::sync::atomic::Ordering::Relaxed;
        let (store, r, data) = piping(100 * BLOCK + 12345, None);
        stream_all(&r, &data);
        assert_eq!(store.opened.load(Relaxed), 1);
        assert!(store.ranges.load(Relaxed) <= 3, "{} window requests", store.ranges.load(Relaxed));
        // random reads afterwards, and a second stream from the start (the kept ranges, or one
        // more pipe)
        for off in [5 * BLOCK + 3, 77, 99 * BLOCK] {
            let mut b = vec![0u8; 4096];
            r.read_exact_at(&mut b, off).unwrap();
            assert_eq!(b, data[off as usize..off as usize + 4096]);
        }
        stream_all(&r, &data);
        assert!(store.opened.load(Relaxed) <= 2);
    }

    /// A body that breaks off mid-stream costs a request, never wrong bytes or a failed read.
    #[test]
    fn a_broken_pipe_falls_back_to_ranges() {
        use std::sync::atomic::Ordering::Relaxed;
        let (store, r, data) = piping(60 * BLOCK, Some(10 * BLOCK + 5));
        stream_all(&r, &data);
        assert!(store.opened.load(Relaxed) >= 2, "{} pipes", store.opened.load(Relaxed));
    }

    #[test]
    fn an_object_gone_or_shorter_than_listed_is_an_error() {
        let mut m = MemStore::default();
        m.objects.insert("img".into(), vec![1u8; 100]);
        let m = Arc::new(m);
        let short = ObjectReader::new(m.clone(), "img", 200);
        assert!(short.read_exact_at(&mut [0u8; 10], 150).is_err());
        let gone = ObjectReader::new(m, "other", 100);
        assert_eq!(gone.read_exact_at(&mut [0u8; 10], 0).unwrap_err().kind(), crate::ErrorKind::Corrupt);
    }
}
