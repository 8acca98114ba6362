//! The one read loop every parser uses.

use crate::error::{Error, Result};
use std::io::{ErrorKind, Read};

/// Reads up to `buf.len()` bytes, short only at the end of the input;
/// `what` names the input in an I/O error.
pub fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8], what: &str) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(format!("reading {what}"), e)),
        }
    }
    Ok(got)
}
