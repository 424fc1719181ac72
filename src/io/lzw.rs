//! TIFF's LZW, decoded whole into the caller's buffer.
//!
//! A streaming decoder (such as `weezl`, which the `tiff` crate uses) must keep each dictionary
//! string in a table of its own, because the output it has written may be gone. A GeoTIFF chunk
//! is decoded whole into one buffer, and there every dictionary string is a slice of the output
//! already written: the string of a new code is the previous code's string plus the first byte
//! of the current one, and these lie back to back. So a code is a (start, length) pair and
//! decoding is a sequence of copies from earlier output, which is several times faster on the
//! long runs of a land-cover map. Knows LZW, not TIFF files.

/// The dictionary: for every code above 257, where its string starts in the output and its
/// length. Reused from chunk to chunk.
pub struct LzwTable {
    start: Box<[u32; 4096]>,
    len: Box<[u32; 4096]>,
}

impl Default for LzwTable {
    fn default() -> Self {
        Self {
            start: Box::new([0; 4096]),
            len: Box::new([0; 4096]),
        }
    }
}

const CLEAR: usize = 256;
const END: usize = 257;
const FIRST_FREE: usize = 258;

/// Why a chunk's LZW data could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LzwError {
    #[error("LZW code {code} at output byte {at} is not in the dictionary (next free code {next})")]
    CodeUnknown { code: usize, at: usize, next: usize },
}

/// Reads codes MSB first from a byte slice, 8 bytes at a time where it can.
struct BitReader<'a> {
    input: &'a [u8],
    pos: usize,
    buf: u64,
    bits: u32,
}

impl BitReader<'_> {
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(bytes) = self.input.get(self.pos..self.pos + 8) {
            let v = u64::from_be_bytes(bytes.try_into().expect("8 bytes"));
            self.buf |= v >> self.bits;
            let take = (63 - self.bits) / 8;
            self.pos += take as usize;
            self.bits += take * 8;
        } else {
            while self.bits <= 56 && self.pos < self.input.len() {
                self.buf |= u64::from(self.input[self.pos]) << (56 - self.bits);
                self.pos += 1;
                self.bits += 8;
            }
        }
    }

    /// The next `width`-bit code, or `None` at the end of the data.
    #[inline(always)]
    fn code(&mut self, width: u32) -> Option<usize> {
        if self.bits < width {
            self.refill();
            if self.bits < width {
                return None;
            }
        }
        let code = (self.buf >> (64 - width)) as usize;
        self.buf <<= width;
        self.bits -= width;
        Some(code)
    }
}

/// Copies `len` bytes from `out[from..]` to `out[to..]` (`from + len ≤ to`), with one 16-byte
/// move for the short strings that make most of the codes.
#[inline(always)]
fn copy_string(out: &mut [u8], from: usize, to: usize, len: usize) {
    if len <= 16 && to + 16 <= out.len() {
        let mut tmp = [0u8; 16];
        tmp.copy_from_slice(&out[from..from + 16]);
        out[to..to + 16].copy_from_slice(&tmp);
    } else {
        out.copy_within(from..from + len, to);
    }
}

/// Decodes TIFF LZW data into `out` until `out` is full, the end code, or the data ends;
/// returns the number of bytes written.
///
/// Codes are 9 to 12 bits, most significant bit first; 256 clears the dictionary and 257 ends
/// the data; the code width grows one code early, when the next free code reaches 2^width − 1,
/// as libtiff's encoder and decoder do (TIFF 6.0, Adobe 1992, section 13).
///
/// # References
/// Welch, T. A. (1984). A technique for high-performance data compression. *Computer* 17(6), 8–19.
pub fn decode(input: &[u8], out: &mut [u8], table: &mut LzwTable) -> Result<usize, LzwError> {
    let mut bits = BitReader {
        input,
        pos: 0,
        buf: 0,
        bits: 0,
    };
    let (start, len) = (&mut *table.start, &mut *table.len);
    let mut width = 9;
    let mut next = FIRST_FREE;
    // The previous code's string in the output: (start, length); length 0 right after a clear.
    let (mut prev_start, mut prev_len) = (0usize, 0usize);
    let mut o = 0;
    while o < out.len() {
        let Some(code) = bits.code(width) else { break };
        if code == CLEAR {
            width = 9;
            next = FIRST_FREE;
            prev_len = 0;
            continue;
        }
        if code == END {
            break;
        }
        let (s, l) = if code < CLEAR {
            out[o] = code as u8;
            (o, 1)
        } else if code < next && prev_len > 0 {
            let (s, l) = (start[code] as usize, len[code] as usize);
            let l = l.min(out.len() - o);
            copy_string(out, s, o, l);
            (o, l)
        } else if code == next && prev_len > 0 {
            // The string being defined: the previous one and its own first byte.
            let l = (prev_len + 1).min(out.len() - o);
            copy_string(out, prev_start, o, l.min(prev_len));
            if l > prev_len {
                out[o + prev_len] = out[prev_start];
            }
            (o, l)
        } else {
            return Err(LzwError::CodeUnknown { code, at: o, next });
        };
        if prev_len > 0 && next < 4096 {
            // The previous string and the first byte of this one, which follows it in the output.
            start[next] = prev_start as u32;
            len[next] = (prev_len + 1) as u32;
            next += 1;
            if next + 1 >= 1 << width && width < 12 {
                width += 1;
            }
        }
        (prev_start, prev_len) = (s, l);
        o += l;
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(data: &[u8]) -> Vec<u8> {
        weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
            .encode(data)
            .unwrap()
    }

    /// Land-cover-like bytes: runs of a few values with noise, long enough to fill the
    /// dictionary several times (so the encoder emits clear codes).
    fn sample(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut out = Vec::with_capacity(n);
        let mut value = 1u8;
        while out.len() < n {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let run = 1 + (x >> 58) as usize * ((x >> 40) & 3) as usize;
            if (x >> 20).trailing_zeros() >= 3 {
                value = [1, 2, 4, 5, 8][((x >> 30) % 5) as usize];
            }
            out.extend(std::iter::repeat_n(value, run.min(n - out.len())));
        }
        out
    }

    #[test]
    fn decodes_what_weezl_encodes() {
        let mut table = LzwTable::default();
        for (n, seed) in [
            (1, 1),
            (2, 2),
            (300, 3),
            (5_000, 4),
            (100_000, 5),
            (1 << 20, 6),
        ] {
            let data = sample(n, seed);
            let packed = encode(&data);
            let mut out = vec![0u8; n];
            assert_eq!(decode(&packed, &mut out, &mut table), Ok(n), "n = {n}");
            assert_eq!(out, data, "n = {n}");
        }
        // Random bytes: short strings, the dictionary cleared every ~3,800 codes.
        let mut x = 7u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        let mut out = vec![0u8; noise.len()];
        assert_eq!(
            decode(&encode(&noise), &mut out, &mut table),
            Ok(noise.len())
        );
        assert_eq!(out, noise);
    }

    #[test]
    fn runs_of_one_byte_use_the_code_being_defined() {
        // "aaaa…" codes as a, then 258 = "aa" before it is in the dictionary, and so on
        // (Welch 1984's exceptional case).
        let data = vec![7u8; 10_000];
        let mut out = vec![0u8; data.len()];
        let mut table = LzwTable::default();
        assert_eq!(decode(&encode(&data), &mut out, &mut table), Ok(data.len()));
        assert_eq!(out, data);
    }

    #[test]
    fn a_short_buffer_stops_and_bad_codes_are_errors() {
        let data = sample(10_000, 9);
        let packed = encode(&data);
        let mut table = LzwTable::default();
        let mut out = vec![0u8; 4_321];
        assert_eq!(decode(&packed, &mut out, &mut table), Ok(4_321));
        assert_eq!(out[..], data[..4_321]);
        // Data cut short decodes what it holds.
        let mut out = vec![0u8; data.len()];
        let got = decode(&packed[..packed.len() / 2], &mut out, &mut table).unwrap();
        assert!(got > 0 && got < data.len());
        assert_eq!(out[..got], data[..got]);
        // 9-bit code 300 right after the clear code: nothing defines it yet.
        // Bits: 100000000 (256) 100101100 (300), padded.
        let bad = [0b1000_0000, 0b0100_1011, 0b0000_0000];
        assert_eq!(
            decode(&bad, &mut out, &mut table),
            Err(LzwError::CodeUnknown {
                code: 300,
                at: 0,
                next: 258
            })
        );
    }
}
