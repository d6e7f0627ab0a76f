//! intake-sources: where files come from.
//!
//! It will own the `Source` trait (list, stat, open as a stream, move, delete) and its SFTP, S3,
//! email-inbox, watched-directory and HTTP-pull implementations. It depends on no other
//! workspace crate. Nothing is implemented yet: `intake check` reads local files directly.
