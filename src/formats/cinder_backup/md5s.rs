//! Each object's md5 over its pieces in order, as they are fetched ([`Md5s`]): `verify` reads a
//! large uncompressed object in pieces (so a posix object of 2 GB is never held whole), checks
//! each piece against the `_sha256file` at once, and hands it to a thread of its own that folds
//! the pieces into the object's md5 in order, beside the reads (md5 has no CPU instructions and
//! is the slowest check). A piece that arrives too far ahead is dropped (memory stays bounded)
//! and is fed again by [`Md5s::sweep`]'s in-order pass, which completes every md5.

use super::CinderError;
use super::metadata::ObjectEntry;
use super::reader::Data;
use md5::{Digest, Md5};
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// Pieces of one object held while they wait for the piece before them.
const MAX_PENDING: usize = 8;
/// Pieces queued for an md5 thread before a fetching thread waits for it.
const QUEUE: usize = 4;
/// md5 threads at most (objects are spread over them; one object's md5 is one thread's).
const THREADS: usize = 4;

/// An object of the chain: (chain member, object index).
pub type ObjectKey = (usize, usize);

type Outcomes = Arc<Mutex<HashMap<ObjectKey, Result<(), CinderError>>>>;

/// The md5s of the objects, made by threads of their own (one per core, started with the first
/// piece; each object's pieces go to one of them) so that they run beside the reads rather
/// than in them, several objects at once.
#[derive(Default)]
pub struct Md5s {
    tx: Mutex<Vec<SyncSender<Msg>>>,
    outcomes: Outcomes,
}

enum Msg {
    Piece {
        key: ObjectKey,
        want: Want,
        start: u64,
        data: Data,
    },
    /// Answered once every message before it has been handled.
    Flush(SyncSender<()>),
}

/// What an object's md5 must come to.
struct Want {
    name: String,
    length: u64,
    md5: [u8; 16],
}

/// One object's md5 so far, on the md5 thread.
struct Run {
    /// Bytes folded in.
    next: u64,
    hasher: Md5,
    /// Pieces fetched ahead of `next`, by their first byte in the object.
    pending: BTreeMap<u64, Data>,
}

impl Md5s {
    /// The md5 threads (started with the first piece), one per core up to [`THREADS`].
    fn senders(&self) -> Vec<SyncSender<Msg>> {
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if tx.is_empty() {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, THREADS);
            for _ in 0..n {
                let (s, r) = sync_channel(QUEUE);
                let outcomes = self.outcomes.clone();
                let spawned = std::thread::Builder::new().name("backup-md5".into()).spawn(move || {
                    let mut runs = HashMap::new();
                    for msg in r {
                        match msg {
                            Msg::Piece { key, want, start, data } => fold(&mut runs, &outcomes, key, want, start, data),
                            Msg::Flush(done) => {
                                let _ = done.send(());
                            }
                        }
                    }
                });
                if spawned.is_err() {
                    break;
                }
                tx.push(s);
            }
            if tx.is_empty() {
                log::warn!("cannot start a thread for object md5s: they are left unchecked");
            }
        }
        tx.clone()
    }

    /// Piece `data` of object `key` (`obj`), from byte `start` of the object, has been fetched
    /// and its `_sha256file` blocks checked: hand it to the md5 thread of its object (waiting
    /// while that has [`QUEUE`] pieces to do).
    pub fn feed(&self, key: ObjectKey, obj: &ObjectEntry, start: u64, data: &Data) {
        if self.outcome(key).is_some() {
            return;
        }
        let want = Want { name: obj.name.clone(), length: obj.length, md5: obj.md5 };
        let senders = self.senders();
        // one object's pieces all go to one thread (its md5 runs in order); objects side by side
        if let Some(tx) = senders.get((key.0.wrapping_mul(31).wrapping_add(key.1)) % senders.len().max(1)) {
            let _ = tx.send(Msg::Piece { key, want, start, data: data.clone() });
        }
    }

    /// Wait until the md5 threads have handled every piece fed so far.
    fn flush(&self) {
        for tx in self.senders() {
            let (s, r) = sync_channel(1);
            if tx.send(Msg::Flush(s)).is_ok() {
                let _ = r.recv();
            }
        }
    }

    /// The md5's verdict on object `key`, once all of it has been folded in.
    pub fn outcome(&self, key: ObjectKey) -> Option<Result<(), CinderError>> {
        self.outcomes.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned()
    }

    /// Complete the md5 of object `key`: `pieces` yields its pieces in order, `(start, data)`
    /// (fetched, or from the cache), and is asked only for what the md5 still needs.
    pub fn sweep(
        &self,
        key: ObjectKey,
        obj: &ObjectEntry,
        mut pieces: impl FnMut(u64) -> crate::Result<(u64, Data)>,
    ) -> crate::Result<Result<(), CinderError>> {
        let mut at = 0u64;
        while at < obj.length {
            self.flush();
            if let Some(done) = self.outcome(key) {
                return Ok(done);
            }
            let (start, data) = pieces(at)?;
            if data.is_empty() {
                return Err(crate::Error::io(format!("object {}: an empty piece at {start}", obj.name)));
            }
            self.feed(key, obj, start, &data);
            at = start + data.len() as u64;
        }
        self.flush();
        self.outcome(key).ok_or_else(|| crate::Error::io(format!("object {}: its md5 could not be made", obj.name)))
    }
}

/// On the md5 thread: fold piece `data` (at `start`) into the md5 of object `key`, with what
/// waited for it; at the end of the object, record the verdict.
fn fold(runs: &mut HashMap<ObjectKey, Run>, outcomes: &Outcomes, key: ObjectKey, want: Want, start: u64, data: Data) {
    if outcomes.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&key) {
        return;
    }
    let run = runs.entry(key).or_insert_with(|| Run { next: 0, hasher: Md5::new(), pending: BTreeMap::new() });
    if start < run.next || run.pending.contains_key(&start) {
        return;
    }
    if start > run.next {
        // too far ahead is dropped: the sweep feeds it again, in order
        if run.pending.len() < MAX_PENDING {
            run.pending.insert(start, data);
        }
        return;
    }
    run.pending.insert(start, data);
    while let Some(piece) = run.pending.remove(&run.next) {
        run.hasher.update(&piece[..]);
        run.next += piece.len() as u64;
    }
    if run.next >= want.length {
        let run = runs.remove(&key).expect("present");
        let got: [u8; 16] = run.hasher.finalize().into();
        let verdict = if got == want.md5 {
            Ok(())
        } else {
            Err(CinderError::Md5 { object: want.name, expected: super::hex(&want.md5), got: super::hex(&got) })
        };
        outcomes.lock().unwrap_or_else(|e| e.into_inner()).insert(key, verdict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::cinder_backup::metadata::Compression;
    use std::sync::Arc;

    fn object(data: &[u8]) -> ObjectEntry {
        ObjectEntry {
            name: "p-00001".into(),
            offset: 0,
            length: data.len() as u64,
            compression: Compression::None,
            md5: Md5::digest(data).into(),
        }
    }

    fn pieces(data: &[u8], n: usize) -> Vec<(u64, Data)> {
        data.chunks(n).enumerate().map(|(i, c)| ((i * n) as u64, Arc::new(c.to_vec()))).collect()
    }

    /// Pieces in order, from one thread: the md5 is that of the whole object; in any order,
    /// repeated, from several threads: what the md5 thread dropped is fed again by the sweep.
    #[test]
    fn pieces_in_any_order_make_the_md5() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
        let obj = object(&data);
        let md5s = Md5s::default();
        let mut ps = pieces(&data, 7_000);
        ps.iter().for_each(|(at, d)| md5s.feed((0, 0), &obj, *at, d));
        md5s.flush();
        assert!(matches!(md5s.outcome((0, 0)), Some(Ok(()))));
        // a piece fed again after the end changes nothing
        md5s.feed((0, 0), &obj, 0, &ps[0].1);
        md5s.flush();
        assert!(matches!(md5s.outcome((0, 0)), Some(Ok(()))));
        ps.reverse();
        std::thread::scope(|s| {
            for half in ps.chunks(ps.len() / 2 + 1) {
                let (md5s, obj) = (&md5s, &obj);
                s.spawn(move || half.iter().for_each(|(at, d)| md5s.feed((0, 1), obj, *at, d)));
            }
        });
        ps.reverse();
        let got = md5s.sweep((0, 1), &obj, |at| Ok(ps[(at / 7_000) as usize].clone())).unwrap();
        assert!(got.is_ok(), "{got:?}");
    }

    /// A changed byte is an md5 mismatch naming the object; pieces dropped for running too far
    /// ahead are fed again by the sweep.
    #[test]
    fn mismatch_and_sweep() {
        let data = vec![7u8; 50_000];
        let mut obj = object(&data);
        obj.md5[0] ^= 1;
        let md5s = Md5s::default();
        let ps = pieces(&data, 1_000);
        for (at, d) in ps.iter().skip(1) {
            md5s.feed((1, 2), &obj, *at, d);
        }
        assert!(md5s.outcome((1, 2)).is_none());
        let got = md5s.sweep((1, 2), &obj, |at| Ok(ps[(at / 1_000) as usize].clone())).unwrap();
        assert!(matches!(got, Err(CinderError::Md5 { ref object, .. }) if object == "p-00001"), "{got:?}");
        // an object never fed is hashed whole by the sweep
        let good = object(&data);
        assert!(matches!(md5s.sweep((3, 0), &good, |at| Ok(ps[(at / 1_000) as usize].clone())), Ok(Ok(()))));
    }
}
