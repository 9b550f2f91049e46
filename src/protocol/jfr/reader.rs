//! Bytes of a chunk: JFR's integers (LEB128-compressed, or fixed-width big-endian in
//! uncompressed chunks) and strings, each read checked against the end.

use std::borrow::Cow;

use super::{corrupt, Result};

/// A position in a chunk's bytes (or in one event's).
#[derive(Clone, Debug)]
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    compressed: bool,
}

/// A string as it is written: inline, or a key of the string pool.
#[derive(Debug)]
pub(super) enum Str<'a> {
    Inline(Cow<'a, str>),
    Pool(u64),
}

fn past_end() -> super::Error {
    corrupt("a value runs past the end")
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], pos: usize, compressed: bool) -> Self {
        Reader { bytes, pos, compressed }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn byte(&mut self) -> Result<u8> {
        let b = *self.bytes.get(self.pos).ok_or_else(past_end)?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or_else(past_end)?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// A compressed integer: 7 bits a byte, low first, the high bit set when more follow; the
    /// ninth byte holds 8 bits.
    #[inline]
    fn varint(&mut self) -> Result<u64> {
        let bytes = self.bytes;
        let mut pos = self.pos;
        let mut value = 0u64;
        for shift in (0..56).step_by(7) {
            let b = *bytes.get(pos).ok_or_else(past_end)?;
            pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                self.pos = pos;
                return Ok(value);
            }
        }
        let b = *bytes.get(pos).ok_or_else(past_end)?;
        self.pos = pos + 1;
        Ok(value | u64::from(b) << 56)
    }

    fn fixed(&mut self, n: usize) -> Result<u64> {
        Ok(self.take(n)?.iter().fold(0u64, |v, b| v << 8 | u64::from(*b)))
    }

    pub(super) fn int(&mut self) -> Result<u64> {
        if self.compressed {
            self.varint()
        } else {
            // Sign-extended, as the JDK reads it.
            Ok(self.fixed(4)? as u32 as i32 as i64 as u64)
        }
    }

    pub(super) fn long(&mut self) -> Result<u64> {
        if self.compressed {
            self.varint()
        } else {
            self.fixed(8)
        }
    }

    pub(super) fn short(&mut self) -> Result<u64> {
        if self.compressed {
            self.varint()
        } else {
            Ok(self.fixed(2)? as u16 as i16 as i64 as u64)
        }
    }

    pub(super) fn char(&mut self) -> Result<u64> {
        if self.compressed {
            self.varint()
        } else {
            self.fixed(2)
        }
    }

    /// A length that must fit in what is left (each element takes a byte at least).
    pub(super) fn len(&mut self) -> Result<usize> {
        let n = self.int()?;
        usize::try_from(n).ok().filter(|n| *n <= self.bytes.len() - self.pos).ok_or_else(|| corrupt(format!("a length of {n}")))
    }

    /// A string: null (0), empty (1), a pool key (2), UTF-8 (3), UTF-16 chars (4) or Latin-1
    /// (5). Invalid UTF-8 or UTF-16 is replaced (U+FFFD), never refused.
    pub(super) fn string(&mut self) -> Result<Str<'a>> {
        Ok(match self.byte()? {
            0 | 1 => Str::Inline(Cow::Borrowed("")),
            2 => Str::Pool(self.long()?),
            3 => {
                let n = self.len()?;
                Str::Inline(String::from_utf8_lossy(self.take(n)?))
            }
            4 => {
                let n = self.len()?;
                let mut units = Vec::with_capacity(n);
                let mut ascii = true;
                for _ in 0..n {
                    let c = self.char()? as u16;
                    ascii &= c < 0x80;
                    units.push(c);
                }
                if ascii {
                    // Every unit one byte: no decoding.
                    let bytes: Vec<u8> = units.iter().map(|c| *c as u8).collect();
                    return Ok(Str::Inline(Cow::Owned(String::from_utf8(bytes).unwrap_or_default())));
                }
                Str::Inline(Cow::Owned(char::decode_utf16(units).map(|c| c.unwrap_or('\u{fffd}')).collect()))
            }
            5 => {
                let n = self.len()?;
                let bytes = self.take(n)?;
                match std::str::from_utf8(bytes) {
                    Ok(s) if bytes.is_ascii() => Str::Inline(Cow::Borrowed(s)),
                    _ => Str::Inline(Cow::Owned(bytes.iter().map(|b| char::from(*b)).collect())),
                }
            }
            other => return Err(corrupt(format!("a string of encoding {other}"))),
        })
    }

    /// Step over a string without decoding it.
    pub(super) fn skip_string(&mut self) -> Result<()> {
        match self.byte()? {
            0 | 1 => {}
            2 => {
                self.long()?;
            }
            3 | 5 => {
                let n = self.len()?;
                self.take(n)?;
            }
            4 => {
                let n = self.len()?;
                for _ in 0..n {
                    self.char()?;
                }
            }
            other => return Err(corrupt(format!("a string of encoding {other}"))),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_integers() {
        let mut r = Reader::new(&[0x05, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0, true);
        assert_eq!(r.int().expect("ok"), 5);
        assert_eq!(r.int().expect("ok"), 300);
        assert_eq!(r.long().expect("ok"), u64::MAX, "nine bytes, the last whole");
        assert!(r.long().is_err(), "nothing left");
        let mut r = Reader::new(&[0x80, 0x80], 0, true);
        assert!(r.long().is_err(), "cut in the middle");
    }

    #[test]
    fn fixed_width_integers() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 1, 0, 0x01, 0x02], 0, false);
        assert_eq!(r.int().expect("ok") as i64, -2);
        assert_eq!(r.long().expect("ok"), 256);
        assert_eq!(r.short().expect("ok"), 0x0102);
    }

    #[test]
    fn strings_in_each_encoding() {
        let text = |bytes: &[u8]| match Reader::new(bytes, 0, true).string().expect("ok") {
            Str::Inline(s) => s.into_owned(),
            Str::Pool(k) => format!("pool {k}"),
        };
        assert_eq!(text(&[0]), "");
        assert_eq!(text(&[1]), "");
        assert_eq!(text(&[2, 7]), "pool 7");
        assert_eq!(text(&[3, 2, b'h', b'i']), "hi");
        assert_eq!(text(&[4, 2, 0x68, 0xe9, 0x01]), "hé");
        assert_eq!(text(&[5, 2, b'h', 0xe9]), "hé");
        assert!(Reader::new(&[3, 9, b'h'], 0, true).string().is_err(), "longer than what is left");
        assert!(Reader::new(&[6], 0, true).string().is_err());
    }
}
