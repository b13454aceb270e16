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
/// Ranges kept (the most recently used): for each of two streams, the one being read and those
/// fetched ahead.
const KEPT: usize = 2 * (AHEAD + 2);

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
    /// The end of the range its reader is in.
    reading: u64,
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

    /// A new stream in a free slot, or in the least recently used one.
    fn start_stream(&mut self) -> usize {
        let id = self.tick();
        let s = Stream { id, next: 0, window: BLOCK, streak: 0, reading: 0, used: id };
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
}

impl ObjectReader {
    /// Object `name` of `store`, `size` bytes long (as the store's listing says).
    pub fn new(store: Arc<dyn ObjectStore>, name: &str, size: u64) -> ObjectReader {
        ObjectReader {
            shared: Arc::new(Shared {
                store,
                name: name.to_string(),
                size,
                state: Mutex::new(State::default()),
                landed: Condvar::new(),
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
                let (found, end) = ((r.start, r.data.clone()), r.end());
                st.recent.push(r);
                // reading on into a range a stream fetched (not a probe's first block): keep
                // its next ones coming
                let ahead = AHEAD as u64 * MAX_WINDOW;
                if let Some(s) = st.streams.iter().position(|s| s.streak >= 2 && end <= s.next && s.next - end <= ahead)
                {
                    let now = st.tick();
                    let stream = &mut st.streams[s];
                    stream.used = now;
                    if stream.reading != end {
                        stream.reading = end;
                        stream.streak = (stream.streak + 1).min(AHEAD as u32 + 1);
                    }
                    self.fetch_ahead(&mut st, s);
                }
                return Ok(found);
            }
            if st.pending.iter().any(|&(a, b)| a <= pos && pos < b) {
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
                stream.streak += 1;
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
            self.fetch_ahead(&mut st, s);
        }
        Ok((start, data))
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

fn keep(st: &mut State, r: Range) {
    while st.recent.len() >= KEPT {
        st.recent.remove(0);
    }
    st.recent.push(r);
}

impl Shared {
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
