//! One object of an [`ObjectStore`] read in place as a layer ([`ObjectReader`]): a LUKS or qcow2
//! image kept in a Swift container, an S3 bucket or Glance is probed and decrypted by range
//! requests, never downloaded whole.
//!
//! Reads go by ranges kept in memory (the few most recent), so a probe's many small header reads
//! cost one request. A reader that twice goes on where the last range ended is streaming, and each
//! request costs a round trip (Glance: ~20 ms) whatever its size: its ranges then double, up to
//! [`MAX_WINDOW`], and the next range is fetched in the background while this one is read (the
//! kernel's readahead, over HTTP). A random reader keeps fetching [`BLOCK`]s.

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
/// Ranges kept (the most recently used): the one being read and those fetched ahead.
const KEPT: usize = AHEAD + 3;

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

#[derive(Default)]
struct State {
    /// Most recently used last.
    recent: Vec<Range>,
    /// Where a sequential reader's next miss would start, and its window.
    next: u64,
    window: u64,
    /// Misses in a row that went on where the previous range ended: a stream from the second
    /// (a probe reading a header and then what follows it is not one).
    streak: u32,
    /// Ranges being fetched (by a reader, or ahead): readers needing them wait.
    pending: Vec<(u64, u64)>,
    /// Ranges being fetched ahead.
    ahead: usize,
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
        let state = State { window: BLOCK, ..State::default() };
        ObjectReader {
            shared: Arc::new(Shared {
                store,
                name: name.to_string(),
                size,
                state: Mutex::new(state),
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
                let found = (r.start, r.data.clone());
                st.recent.push(r);
                // reading into the last range of a stream (not a probe's first block): fetch
                // the next one ahead
                if st.streak >= 2 && st.recent.last().is_some_and(|r| r.end() == st.next) {
                    self.fetch_ahead(&mut st);
                }
                return Ok(found);
            }
            if st.pending.iter().any(|&(a, b)| a <= pos && pos < b) {
                st = sh.landed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            break;
        }
        // A miss. A stream goes on where the last range ended, or just after it (the threads of
        // one reader arrive a little out of order): fetch from there, with a doubled window. A
        // probe jumping from header to header is no stream.
        let grown = (st.window * 2).min(MAX_WINDOW);
        let sequential = st.next > 0 && pos >= st.next && pos - st.next < BLOCK;
        let (start, window) = if sequential { (st.next, grown) } else { (pos - pos % BLOCK, BLOCK) };
        st.window = window;
        st.streak = if sequential { st.streak + 1 } else { 0 };
        let len = window.min(sh.size - start);
        st.pending.push((start, start + len));
        st.next = st.next.max(start + len);
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
        if st.streak >= 2 {
            self.fetch_ahead(&mut st);
        }
        Ok((start, data))
    }

    /// Fetch the stream's next windows in the background (up to [`AHEAD`] at a time, fewer while
    /// the stream is young).
    fn fetch_ahead(&self, st: &mut State) {
        // one window ahead at first, more as the stream goes on
        let limit = AHEAD.min(st.streak.saturating_sub(1) as usize);
        while st.ahead < limit && st.next < self.shared.size && self.fetch_one_ahead(st) {}
    }

    /// Start fetching the next window; false when no thread could be started.
    fn fetch_one_ahead(&self, st: &mut State) -> bool {
        let start = st.next;
        st.window = (st.window * 2).min(MAX_WINDOW);
        let len = st.window.min(self.shared.size - start);
        st.ahead += 1;
        st.pending.push((start, start + len));
        st.next = start + len;
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
                    st.next = st.next.min(start);
                }
            }
            sh.landed.notify_all();
        });
        if spawned.is_err() {
            st.ahead -= 1;
            st.pending.retain(|&p| p != (start, start + len));
            st.next = start;
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
        assert_eq!(r.shared.state.lock().unwrap().window, MAX_WINDOW);
        // and random reads after it
        for off in [5 * BLOCK + 3, 77, 99 * BLOCK] {
            let mut b = vec![0u8; 4096];
            r.read_exact_at(&mut b, off).unwrap();
            assert_eq!(b, data[off as usize..off as usize + 4096]);
        }
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
