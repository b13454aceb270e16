//! The volume tree: what a source image holds, layer under layer.
//!
//! Every volume is a byte range readable through [`crate::io::ReadAt`]: the image file itself, a
//! partition, a logical volume, a qcow2 guest disk, a decrypted LUKS volume. [`probe::probe`]
//! says what one holds (a layer and its children, or a leaf such as a filesystem); [`tree::Volume`]
//! builds the children lazily (those of an encrypted volume appear when it unlocks); [`span`]
//! assembles LVM2 volume groups whose PVs lie in several images of one source; [`name`] gives
//! each volume the stable name that `mount`, `cat --volume`, `inspect`, `verify` and the keytab use.
//! A new format is a folder under [`crate::formats`] plus one arm in [`probe`].

pub mod name;
pub mod probe;
pub mod span;
pub mod tree;

pub use probe::Content;
pub use tree::{ImageTree, Limits, Lock, Volume};
