//! What `inspect` and `verify` say about an image: each builds one JSON document (schema in
//! `docs/inspect-json.md`) from the volume tree, rendered as text by [`render`].

pub(crate) mod forward;
mod hashing;
pub mod inspect;
mod progress;
pub mod render;
mod signature;
pub mod verdict;
pub mod verify;

pub(crate) use progress::Progress;
pub use render::render_text;
pub use verdict::{EXIT_MISMATCH, EXIT_WARN, Verdict, worst};
