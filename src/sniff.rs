//! Placeholder: being written in a parallel change.
