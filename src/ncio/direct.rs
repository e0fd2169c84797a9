//! HDF5 direct chunk writes into a file netCDF-C has just defined.
//!
//! netCDF-C defines the file (dimensions, attributes, chunked variables with their
//! shuffle + deflate filters and fill) and closes it; this reopens it through HDF5 and
//! hands over chunks that were compressed elsewhere ([`super::compress`]), with filter
//! mask 0 (every declared filter applied), so the file stays an ordinary netCDF-4 file.
//! It also rewrites attributes whose values are known only once the data went by
//! (`valid_min`/`valid_max`) in place, which keeps their position among the attributes.
//!
//! Every call holds `hdf5_sys::LOCK`, the lock the `netcdf` crate serialises netCDF-C
//! (and so HDF5) on, so these calls never overlap other threads' netCDF calls.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use h5::h5i::hid_t;
use hdf5_metno_sys as h5;

use super::NcError;

extern "C" {
    /// HDF5 ≥ 1.10.7 (Debian 12 has 1.10.8); not in `hdf5-metno-sys` 0.12.
    fn H5Pset_file_locking(
        fapl_id: hid_t,
        use_file_locking: h5::h5::hbool_t,
        ignore_when_disabled: h5::h5::hbool_t,
    ) -> h5::h5::herr_t;
}

/// A netCDF-4 file reopened read-write through HDF5.
pub(super) struct H5File {
    id: hid_t,
    path: PathBuf,
}

/// One dataset (netCDF variable) of an [`H5File`].
pub(super) struct H5Dataset<'f> {
    id: hid_t,
    file: &'f H5File,
    name: String,
}

fn cstring(path: &Path, s: &str) -> Result<CString, NcError> {
    CString::new(s).map_err(|_| NcError::Missing {
        path: path.to_path_buf(),
        what: format!("C-compatible name for {s:?} (it contains a NUL byte)"),
    })
}

impl H5File {
    /// Opens the (closed) netCDF-4 file at `temp` for writing; `path` is the name errors
    /// report.
    pub(super) fn open_rw(temp: &Path, path: &Path) -> Result<H5File, NcError> {
        Self::open(temp, path, true)
    }

    /// Opens the netCDF-4 file at `path` read-only (storage inquiry).
    pub(super) fn open_ro(path: &Path) -> Result<H5File, NcError> {
        Self::open(path, path, false)
    }

    fn open(temp: &Path, path: &Path, writable: bool) -> Result<H5File, NcError> {
        let fail = |what: &str| NcError::Hdf5 {
            path: path.to_path_buf(),
            what: what.to_string(),
        };
        let ctemp = cstring(path, &temp.to_string_lossy())?;
        let _held = h5::LOCK.lock();
        // SAFETY: H5open only initialises the library (idempotent).
        if unsafe { h5::h5::H5open() } < 0 {
            return Err(fail("initialisation"));
        }
        // No file lock (HDF5 ≥ 1.10.7 takes an flock by default): a child process
        // spawned meanwhile inherits the descriptor, and with it an exclusive lock,
        // until it exits, so netCDF's next open of the finished file would fail.
        // SAFETY: the library is open, so the class id is initialised; the list is
        // closed below.
        let fapl = unsafe { h5::h5p::H5Pcreate(*h5::h5p::H5P_CLS_FILE_ACCESS) };
        if fapl < 0 {
            return Err(fail("creating a file access list"));
        }
        // SAFETY: `fapl` is a file access property list; both flags are plain values.
        let locking = unsafe { H5Pset_file_locking(fapl, false as _, true as _) };
        // SAFETY: valid NUL-terminated path and an open access list, closed once.
        let id = unsafe {
            let id = if locking >= 0 {
                let flags = if writable {
                    h5::h5f::H5F_ACC_RDWR
                } else {
                    h5::h5f::H5F_ACC_RDONLY
                };
                h5::h5f::H5Fopen(ctemp.as_ptr(), flags, fapl)
            } else {
                -1
            };
            h5::h5p::H5Pclose(fapl);
            id
        };
        if id < 0 {
            return Err(fail(if writable {
                "opening the file read-write"
            } else {
                "opening the file read-only"
            }));
        }
        Ok(H5File {
            id,
            path: path.to_path_buf(),
        })
    }

    pub(super) fn dataset(&self, name: &str) -> Result<H5Dataset<'_>, NcError> {
        let cname = cstring(&self.path, name)?;
        let _held = h5::LOCK.lock();
        // SAFETY: open file id, valid name, default access list.
        let id = unsafe { h5::h5d::H5Dopen2(self.id, cname.as_ptr(), h5::h5p::H5P_DEFAULT) };
        if id < 0 {
            return Err(NcError::Hdf5 {
                path: self.path.clone(),
                what: format!("opening variable `{name}`"),
            });
        }
        Ok(H5Dataset {
            id,
            file: self,
            name: name.to_string(),
        })
    }

    /// Closes the file, flushing HDF5's metadata: a failure here is a write failure.
    pub(super) fn close(mut self) -> Result<(), NcError> {
        let id = std::mem::replace(&mut self.id, -1);
        let _held = h5::LOCK.lock();
        // SAFETY: id is an open file closed exactly once (Drop sees -1).
        if unsafe { h5::h5f::H5Fclose(id) } < 0 {
            return Err(NcError::Hdf5 {
                path: self.path.clone(),
                what: "closing the file".to_string(),
            });
        }
        Ok(())
    }
}

impl Drop for H5File {
    fn drop(&mut self) {
        if self.id >= 0 {
            let _held = h5::LOCK.lock();
            // SAFETY: an open file id, closed once; the file is discarded by the caller.
            unsafe { h5::h5f::H5Fclose(self.id) };
        }
    }
}

impl H5Dataset<'_> {
    fn fail(&self, what: String) -> NcError {
        NcError::Hdf5 {
            path: self.file.path.clone(),
            what: format!("{what} of variable `{}`", self.name),
        }
    }

    /// Writes one finished (shuffled + deflated) chunk whose first element is at
    /// `offset` (element coordinates, a multiple of the chunk shape).
    pub(super) fn write_chunk(&self, offset: &[u64], bytes: &[u8]) -> Result<(), NcError> {
        let _held = h5::LOCK.lock();
        // SAFETY: open dataset; `offset` has one entry per dimension (the caller builds
        // it from the variable's shape); `bytes` is valid for its length. Filter mask 0:
        // every filter of the pipeline was applied.
        let rc = unsafe {
            h5::h5d::H5Dwrite_chunk(
                self.id,
                h5::h5p::H5P_DEFAULT,
                0,
                offset.as_ptr(),
                bytes.len(),
                bytes.as_ptr().cast(),
            )
        };
        if rc < 0 {
            return Err(self.fail(format!("writing the chunk at {offset:?}")));
        }
        Ok(())
    }

    /// Overwrites the value of an existing scalar float32 attribute in place.
    pub(super) fn set_f32_attr(&self, name: &str, value: f32) -> Result<(), NcError> {
        let cname = cstring(&self.file.path, name)?;
        let _held = h5::LOCK.lock();
        // SAFETY: open dataset id, valid name.
        let attr = unsafe { h5::h5a::H5Aopen(self.id, cname.as_ptr(), h5::h5p::H5P_DEFAULT) };
        if attr < 0 {
            return Err(self.fail(format!("opening attribute `{name}`")));
        }
        // SAFETY: the library is open (H5Fopen ran H5open), so the native type id is
        // initialised; the attribute holds one float32, `value` is one f32.
        let rc = unsafe {
            let rc = h5::h5a::H5Awrite(
                attr,
                *h5::h5t::H5T_NATIVE_FLOAT,
                (&value as *const f32).cast(),
            );
            let close = h5::h5a::H5Aclose(attr);
            if rc < 0 {
                rc
            } else {
                close
            }
        };
        if rc < 0 {
            return Err(self.fail(format!("writing attribute `{name}`")));
        }
        Ok(())
    }
}

/// Where one stored chunk of a dataset lies in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLocation {
    /// Element coordinates of the chunk's first element.
    pub offset: Vec<u64>,
    /// Byte offset of the stored (filtered) chunk in the file.
    pub addr: u64,
    /// Stored size in bytes.
    pub size: u64,
}

impl H5Dataset<'_> {
    /// Whether the stored element type is little-endian.
    pub(super) fn little_endian(&self) -> Result<bool, NcError> {
        let _held = h5::LOCK.lock();
        // SAFETY: open dataset; the type id is closed once.
        let order = unsafe {
            let t = h5::h5d::H5Dget_type(self.id);
            if t < 0 {
                return Err(self.fail("inquiring the type".to_string()));
            }
            let order = h5::h5t::H5Tget_order(t);
            h5::h5t::H5Tclose(t);
            order
        };
        match order {
            h5::h5t::H5T_order_t::H5T_ORDER_LE => Ok(true),
            h5::h5t::H5T_order_t::H5T_ORDER_BE => Ok(false),
            _ => Err(self.fail("byte order (neither little- nor big-endian)".to_string())),
        }
    }

    /// Every allocated chunk (chunks never written are absent and read as fill), with
    /// every filter applied: a chunk stored with a filter skipped is an error.
    pub(super) fn chunk_locations(&self, rank: usize) -> Result<Vec<ChunkLocation>, NcError> {
        let _held = h5::LOCK.lock();
        // SAFETY: open dataset; the space id is closed below.
        let space = unsafe { h5::h5d::H5Dget_space(self.id) };
        if space < 0 {
            return Err(self.fail("inquiring the dataspace".to_string()));
        }
        let mut n: h5::h5::hsize_t = 0;
        // SAFETY: open dataset and dataspace, valid out-pointer.
        let rc = unsafe { h5::h5d::H5Dget_num_chunks(self.id, space, &mut n) };
        let mut out = Vec::with_capacity(if rc < 0 { 0 } else { n as usize });
        let mut result = if rc < 0 {
            Err(self.fail("counting the chunks".to_string()))
        } else {
            Ok(())
        };
        for index in 0..if rc < 0 { 0 } else { n } {
            let mut offset = vec![0 as h5::h5::hsize_t; rank.max(1)];
            let (mut mask, mut addr, mut size): (u32, h5::h5::haddr_t, h5::h5::hsize_t) = (0, 0, 0);
            // SAFETY: `offset` holds one entry per dimension of the dataset (`rank`,
            // the caller's count of its dimensions); the other out-pointers are valid.
            let rc = unsafe {
                h5::h5d::H5Dget_chunk_info(
                    self.id,
                    space,
                    index,
                    offset.as_mut_ptr(),
                    &mut mask,
                    &mut addr,
                    &mut size,
                )
            };
            if rc < 0 {
                result = Err(self.fail(format!("locating chunk {index}")));
                break;
            }
            if mask != 0 {
                result = Err(self.fail(format!(
                    "chunk at {offset:?} (stored with filter mask {mask:#x}, a filter skipped)"
                )));
                break;
            }
            offset.truncate(rank);
            out.push(ChunkLocation { offset, addr, size });
        }
        // SAFETY: the space id opened above, closed once.
        unsafe { h5::h5s::H5Sclose(space) };
        result.map(|()| out)
    }
}

impl Drop for H5Dataset<'_> {
    fn drop(&mut self) {
        let _held = h5::LOCK.lock();
        // SAFETY: an open dataset id, closed exactly once.
        unsafe { h5::h5d::H5Dclose(self.id) };
    }
}
