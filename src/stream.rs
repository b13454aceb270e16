//! Ordered, parallel decryption of a byte range: worker threads decrypt chunks ahead while the
//! caller consumes them in order (for `cat` to a pipe and `verify`). Memory stays bounded:
//! at most `2 × threads` chunks are in flight.

use crate::io::ReadAt;
use crate::{Error, Result};
use std::sync::mpsc::sync_channel;

/// Bytes decrypted per work item.
pub const CHUNK: u64 = 4 << 20;

/// Read (decrypt) `[start, end)` of any volume on `threads` workers and hand each chunk, in order, to
/// `sink`. Stops at the first error (from decryption or from `sink`).
pub fn for_each_chunk(
    image: &dyn ReadAt,
    start: u64,
    end: u64,
    threads: usize,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    if start >= end {
        return Ok(());
    }
    let threads = threads.clamp(1, 16);
    let chunks = (end - start).div_ceil(CHUNK);
    std::thread::scope(|s| {
        let mut rxs = Vec::with_capacity(threads);
        for w in 0..threads as u64 {
            let (tx, rx) = sync_channel::<Result<Vec<u8>>>(2);
            rxs.push(rx);
            s.spawn(move || {
                let mut i = w;
                while i < chunks {
                    let off = start + i * CHUNK;
                    let n = CHUNK.min(end - off) as usize;
                    let mut buf = vec![0u8; n];
                    let r = image.read_exact_at(&mut buf, off).map(|()| buf);
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        return;
                    }
                    i += threads as u64;
                }
            });
        }
        for i in 0..chunks {
            let rx = &rxs[(i % threads as u64) as usize];
            let chunk = rx.recv().map_err(|_| Error::io("a decryption worker stopped unexpectedly"))??;
            sink(&chunk)?;
        }
        // Dropping the receivers (on error, above) makes blocked workers stop.
        Ok(())
    })
}
