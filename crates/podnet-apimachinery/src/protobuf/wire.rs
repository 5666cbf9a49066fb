//! The protobuf wire format: varints, tags and length-delimited fields, with bounds checks everywhere
//! (the input is untrusted request bodies).

use super::PbError;

/// A decoded field value, borrowing from the input.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(#[allow(dead_code)] u32),
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, PbError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(PbError::Truncated)?;
            self.pos += 1;
            // the tenth byte may only carry the top bit of a u64
            if i == 9 && b > 1 {
                return Err(PbError::BadVarint);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(PbError::BadVarint)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PbError> {
        let end = self.pos.checked_add(n).ok_or(PbError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(PbError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// The next field: its number and value.
    pub(crate) fn field(&mut self) -> Result<(u32, WireValue<'a>), PbError> {
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| PbError::BadTag)?;
        if tag == 0 {
            return Err(PbError::BadTag);
        }
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| PbError::Truncated)?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            w => return Err(PbError::WireType(w as u8)),
        };
        Ok((tag, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_varints_and_bytes() {
        // field 1 varint 300, field 2 bytes "hi"
        let buf = [0x08, 0xac, 0x02, 0x12, 0x02, b'h', b'i'];
        let mut r = Reader::new(&buf);
        assert!(matches!(r.field().unwrap(), (1, WireValue::Varint(300))));
        assert!(matches!(r.field().unwrap(), (2, WireValue::Bytes(b"hi"))));
        assert!(r.at_end());
    }

    #[test]
    fn rejects_truncation_and_overlong_varints() {
        assert!(Reader::new(&[0x12, 0x05, b'a']).field().is_err());
        assert!(
            Reader::new(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ])
            .field()
            .is_err()
        );
        assert!(Reader::new(&[0x00]).field().is_err());
        assert!(Reader::new(&[0x0b]).field().is_err()); // wire type 3 (groups) unsupported
    }
}
