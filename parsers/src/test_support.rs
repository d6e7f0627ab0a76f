//! Readers that misbehave on purpose, shared by the parser tests.

use std::io::{self, Read};

/// Hands out its bytes one at a time, to split every line and multi-byte sequence across reads.
pub(crate) struct OneByteAtATime<'a>(pub(crate) &'a [u8]);

impl Read for OneByteAtATime<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((byte, rest)), Some(slot)) => {
                *slot = *byte;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}
