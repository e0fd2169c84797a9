//! Chunk compression outside the C libraries: HDF5's shuffle filter re-done in Rust and
//! a standard zlib stream from libdeflate.
//!
//! It exists so a granule's chunks can be compressed on every core at once, outside the
//! netCDF/HDF5 global lock, and handed to HDF5 finished (direct chunk writes). The bytes
//! it makes are what HDF5's own `shuffle` + `deflate` filters decode, so any netCDF or
//! HDF5 reader reads them back; they are not byte-identical to what zlib would make (a
//! different, faster encoder), only the decompressed values are. Pure Rust plus
//! libdeflate's C, no netCDF/HDF5: the benchmark's compression floor uses it too.

use std::cell::RefCell;

use libdeflater::{CompressionLvl, Compressor, DecompressionError, Decompressor};

/// The per-chunk filter pipeline: optional byte shuffle, then zlib at `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkCodec {
    /// zlib level, 1–9 (what `_DeflateLevel` records).
    pub level: u8,
    /// HDF5 shuffle before deflate.
    pub shuffle: bool,
    /// Bytes per element (4 for float32/int32, 8 for float64).
    pub elem_size: usize,
}

/// Why a chunk could not be compressed or decompressed.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("deflate level {0} is outside 1–9")]
    Level(u8),
    #[error("the compressed chunk did not fit its bound ({0} bytes in)")]
    Bound(usize),
    #[error("a chunk does not inflate to {expected} bytes: {reason}")]
    Inflate { expected: usize, reason: String },
}

thread_local! {
    /// One libdeflate compressor per thread and level (allocating one costs more than
    /// compressing a small chunk), and scratch space for the shuffled bytes.
    static COMPRESSOR: RefCell<Option<(u8, Compressor)>> = const { RefCell::new(None) };
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// HDF5's shuffle filter (H5Zshuffle.c): byte `b` of element `i` goes to
/// `dst[b·n + i]`, `n` whole elements; trailing bytes of a partial element are copied
/// as they are. Nothing changes for 1-byte elements or a single element.
pub fn shuffle(elem_size: usize, src: &[u8], dst: &mut [u8]) {
    assert_eq!(src.len(), dst.len(), "shuffle: buffers differ in length");
    let n = src.len() / elem_size.max(1);
    if elem_size <= 1 || n <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    match elem_size {
        // The common case, kept separate so the compiler unrolls it.
        4 => {
            let (p0, rest) = dst.split_at_mut(n);
            let (p1, rest) = rest.split_at_mut(n);
            let (p2, rest) = rest.split_at_mut(n);
            let (p3, tail) = rest.split_at_mut(n);
            for (i, e) in src.chunks_exact(4).enumerate() {
                p0[i] = e[0];
                p1[i] = e[1];
                p2[i] = e[2];
                p3[i] = e[3];
            }
            tail.copy_from_slice(&src[4 * n..]);
        }
        s => {
            for (i, e) in src.chunks_exact(s).enumerate() {
                for (b, &byte) in e.iter().enumerate() {
                    dst[b * n + i] = byte;
                }
            }
            dst[s * n..].copy_from_slice(&src[s * n..]);
        }
    }
}

/// The inverse of [`shuffle`].
pub fn unshuffle(elem_size: usize, src: &[u8], dst: &mut [u8]) {
    assert_eq!(src.len(), dst.len(), "unshuffle: buffers differ in length");
    let n = src.len() / elem_size.max(1);
    if elem_size <= 1 || n <= 1 {
        dst.copy_from_slice(src);
        return;
    }
    for (i, e) in dst.chunks_exact_mut(elem_size).enumerate() {
        for (b, byte) in e.iter_mut().enumerate() {
            *byte = src[b * n + i];
        }
    }
    dst[elem_size * n..].copy_from_slice(&src[elem_size * n..]);
}

impl ChunkCodec {
    /// Shuffles (if asked) and deflates one chunk's raw bytes into a zlib stream.
    /// Runs on the calling thread with that thread's compressor.
    pub fn compress(&self, raw: &[u8]) -> Result<Vec<u8>, CompressError> {
        if !(1..=9).contains(&self.level) {
            return Err(CompressError::Level(self.level));
        }
        COMPRESSOR.with(|c| {
            let mut slot = c.borrow_mut();
            if slot.as_ref().map(|(l, _)| *l) != Some(self.level) {
                let lvl = CompressionLvl::new(i32::from(self.level))
                    .map_err(|_| CompressError::Level(self.level))?;
                *slot = Some((self.level, Compressor::new(lvl)));
            }
            let Some((_, comp)) = slot.as_mut() else {
                return Err(CompressError::Level(self.level));
            };
            let mut out = vec![0u8; comp.zlib_compress_bound(raw.len())];
            let written = if self.shuffle {
                SCRATCH.with(|s| {
                    let mut s = s.borrow_mut();
                    s.resize(raw.len(), 0);
                    shuffle(self.elem_size, raw, &mut s);
                    comp.zlib_compress(&s, &mut out)
                })
            } else {
                comp.zlib_compress(raw, &mut out)
            }
            .map_err(|_| CompressError::Bound(raw.len()))?;
            out.truncate(written);
            out.shrink_to_fit();
            Ok(out)
        })
    }

    /// Inflates and unshuffles one chunk of `raw_len` bytes (for checks and tests).
    pub fn decompress(&self, zlib: &[u8], raw_len: usize) -> Result<Vec<u8>, CompressError> {
        let mut inflated = vec![0u8; raw_len];
        let fail = |reason: String| CompressError::Inflate {
            expected: raw_len,
            reason,
        };
        let got = Decompressor::new()
            .zlib_decompress(zlib, &mut inflated)
            .map_err(|e: DecompressionError| fail(e.to_string()))?;
        if got != raw_len {
            return Err(fail(format!("it inflated to {got}")));
        }
        if !self.shuffle {
            return Ok(inflated);
        }
        let mut out = vec![0u8; raw_len];
        unshuffle(self.elem_size, &inflated, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn shuffle_matches_hdf5_layout() {
        // Two float32 elements AABBCCDD, EEFFGGHH → AE BF CG DH, plus one trailing byte.
        let src = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut dst = [0u8; 9];
        shuffle(4, &src, &mut dst);
        assert_eq!(dst, [1, 5, 2, 6, 3, 7, 4, 8, 9]);
        let mut back = [0u8; 9];
        unshuffle(4, &dst, &mut back);
        assert_eq!(back, src);
        let src8: Vec<u8> = (0..24).collect();
        let mut d8 = vec![0u8; 24];
        shuffle(8, &src8, &mut d8);
        assert_eq!(&d8[..6], &[0, 8, 16, 1, 9, 17]);
        let mut b8 = vec![0u8; 24];
        unshuffle(8, &d8, &mut b8);
        assert_eq!(b8, src8);
    }

    #[test]
    fn zlib_stream_inflates_with_flate2() {
        // An independent zlib decoder (flate2) must read what libdeflate wrote.
        let values: Vec<f32> = (0..10_000).map(|i| (i as f32 * 0.01).sin()).collect();
        let raw: &[u8] = bytemuck::cast_slice(&values);
        let codec = ChunkCodec {
            level: 5,
            shuffle: true,
            elem_size: 4,
        };
        let z = codec.compress(raw).unwrap();
        assert!(z.len() < raw.len());
        let mut inflated = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut inflated)
            .unwrap();
        let mut expected = vec![0u8; raw.len()];
        shuffle(4, raw, &mut expected);
        assert_eq!(inflated, expected);
        assert_eq!(codec.decompress(&z, raw.len()).unwrap(), raw);
        assert!(ChunkCodec { level: 0, ..codec }.compress(raw).is_err());
    }
}
