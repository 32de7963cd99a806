//! CRC-32 (the IEEE 802.3 / zlib / PNG polynomial, reflected), for the checkpoint checksum.
//!
//! A few lines of table-driven code rather than a compression crate: checkpoints need nothing
//! else from one, and the library stays free of it when the `gzip` feature is off.

/// The reflected IEEE polynomial.
const POLY: u32 = 0xEDB8_8320;

/// The byte-at-a-time lookup table, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A running CRC-32 over the bytes given to [`Crc32::update`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Crc32 {
    state: u32,
}

impl Crc32 {
    /// The CRC of no bytes.
    pub(super) fn new() -> Crc32 {
        Crc32 { state: !0 }
    }

    /// Adds `bytes`.
    pub(super) fn update(&mut self, bytes: &[u8]) {
        let mut c = self.state;
        for &b in bytes {
            c = TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
        }
        self.state = c;
    }

    /// The CRC of everything added so far.
    pub(super) fn sum(&self) -> u32 {
        !self.state
    }
}

#[cfg(test)]
mod tests {
    use super::Crc32;

    fn crc(bytes: &[u8]) -> u32 {
        let mut c = Crc32::new();
        c.update(bytes);
        c.sum()
    }

    #[test]
    fn standard_check_values() {
        // The catalogued check value of CRC-32/ISO-HDLC, and two other well-known ones.
        assert_eq!(crc(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc(b""), 0);
        assert_eq!(
            crc(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn updates_in_pieces_equal_one_update() {
        let mut c = Crc32::new();
        c.update(b"1234");
        c.update(b"");
        c.update(b"56789");
        assert_eq!(c.sum(), crc(b"123456789"));
    }
}
