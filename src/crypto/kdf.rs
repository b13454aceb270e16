//! Argon2 for LUKS2 key slots. Placeholder: being written in a parallel change.
