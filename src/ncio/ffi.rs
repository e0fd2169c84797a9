//! The crate's only door to the C libraries: every `unsafe` call into netCDF-C and HDF5
//! is made here, under the one lock both libraries are serialised on.
//!
//! netCDF-C is not thread-safe. The `netcdf` crate takes `netcdf_sys::libnetcdf_lock`
//! around each of its calls, and that lock *is* `hdf5_sys::LOCK` (netcdf-sys re-exports
//! it), a re-entrant mutex. Every call here takes the same lock ([`lock`]), so no C call
//! of this crate ever overlaps another thread's netCDF or HDF5 call; and the crate's own
//! calls can be made while it is held (it is re-entrant), which is how a file is created
//! or opened and its descriptors made private in one step ([`create`], [`open`]).
//!
//! Descriptors: HDF5 (≥ 1.10.7) `flock`s every file it opens (exclusive for writing,
//! shared for reading) and opens it without close-on-exec. A child process started by
//! any thread while a granule is being written inherited the descriptor and with it the
//! exclusive lock, held until the child exited: netCDF's next open of the finished file
//! then failed with `NC_EHDFERR` (-101, "NetCDF: HDF error"). That was the intermittent
//! `tests/native_granule.rs` failure (its other tests start `edp` processes while
//! granules are written in the test process). Files are therefore marked close-on-exec
//! as soon as they are opened, still under the lock ([`no_inherit`]), and the direct
//! reopen asks for no lock at all.
//!
//! HDF5 direct chunk writes ([`H5File`], [`H5Dataset`]) go into a file netCDF-C has just
//! defined: it is reopened through HDF5 and given chunks compressed elsewhere
//! ([`super::compress`]) with filter mask 0 (every declared filter applied), so the file
//! stays an ordinary netCDF-4 file. Attributes whose values are known only once the data
//! went by (`valid_min`/`valid_max`) are rewritten in place, keeping their position.
//! Header templates (`super::template`) use the same file handle: they overwrite
//! attribute values and write whole coordinate values in a copy of a template, then
//! park the open file for the chunk writer's `open_rw` on the same thread.
//!
//! Error printing: netCDF-C switches HDF5's automatic error stack printing off when it
//! initialises, but the system HDF5 is thread-safe, where that switch is per thread;
//! every other thread would print `HDF5-DIAG` noise for the attributes netCDF probes and
//! does not find (`_QuantizeBitGroom...`) although nothing failed. Each thread entering
//! `ncio` switches it off for itself ([`quiet_hdf5_errors`]).

use std::cell::Cell;
use std::ffi::{c_int, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use h5::h5i::hid_t;
use hdf5_metno_sys as h5;
use netcdf_sys as nc;

use super::{AttrValue, NcError, Values};

/// The lock of netCDF-C and HDF5 (`hdf5_sys::LOCK` = `netcdf_sys::libnetcdf_lock`).
#[must_use]
fn lock() -> impl Sized {
    h5::LOCK.lock()
}

thread_local! {
    static HDF5_QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Keeps HDF5 from closing, at process exit, files that are still open. A granule
/// write that failed (a full disk) leaves its HDF5 file half-closed: netCDF-C has
/// freed its side, HDF5's close could not flush and kept the file's ID. HDF5's
/// exit handler (H5_term_library) then closed it again and crashed in
/// H5F__close_cb: a full disk ended in SIGSEGV instead of exit status 1, and under
/// MPI a crashed rank takes the whole job with it. Every file we open we also close
/// (or abandon after a failed write, its temporary file emptied and removed), so
/// nothing is lost. Must run before HDF5 initialises: [`super::library_init`] in
/// `main`, and before the first open or create here for library users.
pub(super) fn no_hdf5_atexit() {
    // Once per process: a flag of the HDF5 library, not run configuration.
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let _held = lock();
        // SAFETY: sets a library flag; a negative status (HDF5 already initialised)
        // only means the handler stays installed.
        let _ = unsafe { h5::h5::H5dont_atexit() };
    });
}

/// Switches HDF5's automatic error printing off for the calling thread (once per
/// thread). Only a thread-safe HDF5 needs it: elsewhere the setting is global and
/// netCDF's initialisation already made it.
pub(super) fn quiet_hdf5_errors() {
    no_hdf5_atexit();
    // A property of the linked HDF5 build, asked once per process.
    static THREADSAFE: OnceLock<bool> = OnceLock::new();
    let threadsafe = *THREADSAFE.get_or_init(|| {
        let mut ts: h5::h5::hbool_t = 0;
        let _held = lock();
        // SAFETY: a pure query writing one hbool_t through a valid pointer.
        let rc = unsafe { h5::h5::H5is_library_threadsafe(&mut ts) };
        rc >= 0 && ts != 0
    });
    if !threadsafe {
        return;
    }
    HDF5_QUIET.with(|done| {
        if !done.get() {
            let _held = lock();
            // SAFETY: a null handler disables printing for this thread's default
            // stack. Failure would only leave the noise on, so its status is ignored.
            let _ =
                unsafe { h5::h5e::H5Eset_auto2(h5::h5e::H5E_DEFAULT, None, std::ptr::null_mut()) };
            done.set(true);
        }
    });
}

/// Creates a new netCDF-4 file at `temp` (never over an existing one) through the
/// `netcdf` crate, its descriptors kept from child processes.
pub(super) fn create(temp: &Path) -> Result<netcdf::FileMut, netcdf::Error> {
    let _held = lock();
    let file = netcdf::create_with(temp, netcdf::Options::NETCDF4 | netcdf::Options::NOCLOBBER)?;
    no_inherit(temp);
    Ok(file)
}

/// Opens the netCDF file at `path` read-only through the `netcdf` crate, its
/// descriptors kept from child processes.
pub(super) fn open(path: &Path) -> Result<netcdf::File, netcdf::Error> {
    let _held = lock();
    let file = netcdf::open(path)?;
    no_inherit(path);
    Ok(file)
}

/// Creates `temp` collectively over `comm` (parallel HDF5), its descriptors kept from
/// child processes.
#[cfg(feature = "parallel-hdf5")]
pub(super) fn create_par(
    temp: &Path,
    comm: mpi::ffi::MPI_Comm,
) -> Result<netcdf::FileMut, netcdf::Error> {
    let _held = lock();
    // SAFETY: reads an MPI constant; MPI is initialised (the caller has a communicator).
    let info = unsafe { mpi::ffi::RSMPI_INFO_NULL };
    let file = netcdf::create_par_with(
        temp,
        comm,
        info,
        netcdf::Options::NETCDF4 | netcdf::Options::NOCLOBBER,
    )?;
    no_inherit(temp);
    Ok(file)
}

/// Marks every descriptor of this process open on `path` close-on-exec (see the module
/// text: HDF5 opens files inheritable and `flock`s them). Called under the lock, right
/// after the C library opened the file. Best effort: without `/proc` nothing is marked.
fn no_inherit(path: &Path) {
    let Ok(target) = std::fs::canonicalize(path) else {
        return;
    };
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in fds.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if fd <= 2 || std::fs::read_link(entry.path()).ok().as_deref() != Some(&target) {
            continue;
        }
        // SAFETY: `fd` is open in this process (listed just now, under the lock that
        // every C call that could close it takes); it is only borrowed for the fcntl.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if let Ok(flags) = rustix::io::fcntl_getfd(fd) {
            let _ = rustix::io::fcntl_setfd(fd, flags | rustix::io::FdFlags::CLOEXEC);
        }
    }
}

fn message(code: c_int) -> String {
    // SAFETY: nc_strerror returns a pointer to a static NUL-terminated string for every
    // code; it reads no library state, but is called under the lock like the rest.
    unsafe {
        let p = nc::nc_strerror(code);
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// `(deflate level if on, shuffle)` of variable `name` in the file at `path`: the
/// `netcdf` crate has no such inquiry and keeps its ncid/varid private, so this opens
/// the file a second time, read-only.
pub(super) fn inq_deflate(path: &Path, name: &str) -> Result<(Option<u8>, bool), NcError> {
    let cpath = path_cstring(path).ok_or_else(|| NcError::Missing {
        path: path.to_path_buf(),
        what: "C-compatible path (it contains a NUL byte)".to_string(),
    })?;
    let cname = CString::new(name).map_err(|_| NcError::Missing {
        path: path.to_path_buf(),
        what: format!("variable `{name:?}` (name contains a NUL byte)"),
    })?;
    let _held = lock();
    let fail = |what: &str, code: c_int| NcError::Inquire {
        path: path.to_path_buf(),
        what: what.to_string(),
        code,
        message: message(code),
    };
    let mut ncid: c_int = -1;
    // SAFETY: valid NUL-terminated path and out-pointer.
    let rc = unsafe { nc::nc_open(cpath.as_ptr(), nc::NC_NOWRITE, &mut ncid) };
    if rc != nc::NC_NOERR {
        return Err(fail("file (opening for storage inquiry)", rc));
    }
    no_inherit(path);
    let mut varid: c_int = -1;
    let (mut shuffle, mut deflate, mut level): (c_int, c_int, c_int) = (0, 0, 0);
    // SAFETY: ncid is open; all pointers are valid for writes.
    let rc = unsafe {
        let rc = nc::nc_inq_varid(ncid, cname.as_ptr(), &mut varid);
        if rc != nc::NC_NOERR {
            rc
        } else {
            nc::nc_inq_var_deflate(ncid, varid, &mut shuffle, &mut deflate, &mut level)
        }
    };
    // SAFETY: ncid was opened above and is closed exactly once.
    let close_rc = unsafe { nc::nc_close(ncid) };
    if rc != nc::NC_NOERR {
        return Err(fail(&format!("deflate/shuffle of variable `{name}`"), rc));
    }
    if close_rc != nc::NC_NOERR {
        return Err(fail("file (closing after storage inquiry)", close_rc));
    }
    let level = (deflate != 0).then(|| u8::try_from(level).unwrap_or(u8::MAX));
    Ok((level, shuffle != 0))
}

fn path_cstring(path: &Path) -> Option<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).ok()
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

thread_local! {
    /// A file left open by [`H5File::park`] for the next [`H5File::open_rw`] of its
    /// temporary name on this thread.
    static PARKED: std::cell::RefCell<Option<(PathBuf, H5File)>> =
        const { std::cell::RefCell::new(None) };
}

impl H5File {
    /// Opens the (closed) netCDF-4 file at `temp` for writing; `path` is the name errors
    /// report. A file [parked](H5File::park) under `temp` on this thread is taken as
    /// it is.
    pub(super) fn open_rw(temp: &Path, path: &Path) -> Result<H5File, NcError> {
        let parked = PARKED.with(|p| {
            let mut p = p.borrow_mut();
            match p.as_ref() {
                Some((t, _)) if t == temp => p.take().map(|(_, f)| f),
                _ => None,
            }
        });
        match parked {
            Some(file) => Ok(file),
            None => Self::open(temp, path, true),
        }
    }

    /// Leaves the file open for the next [`H5File::open_rw`] of `temp` on this thread:
    /// the header template fills a header and the chunk writer writes its chunks
    /// next, without HDF5 closing and reopening the file in between (a new metadata
    /// cache each time). A file parked before and not taken is closed; one never taken
    /// is closed when the thread ends.
    pub(super) fn park(self, temp: &Path) {
        let old = PARKED.with(|p| p.borrow_mut().replace((temp.to_path_buf(), self)));
        drop(old);
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
        let ctemp = path_cstring(temp).ok_or_else(|| NcError::Missing {
            path: path.to_path_buf(),
            what: "C-compatible path (it contains a NUL byte)".to_string(),
        })?;
        let _held = lock();
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
        let locking = unsafe { h5::h5p::H5Pset_file_locking(fapl, 0, 1) };
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
        no_inherit(temp);
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
        let _held = lock();
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
        let _held = lock();
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
            let _held = lock();
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
        let _held = lock();
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
        let _held = lock();
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

/// Overwrites, in place, the value of the existing attribute `name` of the object `loc`
/// (the file, meaning its root group, or a dataset) with `value`, which must have the
/// attribute's stored size: text its byte length, numbers their count. Header
/// templates ([`super::template`]) rewrite the values that differ from the template's
/// this way, keeping each attribute's place in creation order. Called under the lock.
fn overwrite_attr(loc: hid_t, name: &CStr, value: &AttrValue) -> Result<(), String> {
    use h5::h5t::{H5T_NATIVE_DOUBLE, H5T_NATIVE_FLOAT, H5T_NATIVE_INT};
    // SAFETY: `loc` is an open file or dataset, `name` NUL-terminated.
    let attr = unsafe { h5::h5a::H5Aopen(loc, name.as_ptr(), h5::h5p::H5P_DEFAULT) };
    if attr < 0 {
        return Err("opening".to_string());
    }
    let (ptr, count, native): (*const std::ffi::c_void, usize, Option<hid_t>) = match value {
        AttrValue::Str(s) => (s.as_ptr().cast(), s.len(), None),
        AttrValue::F32(x) => ((x as *const f32).cast(), 1, Some(*H5T_NATIVE_FLOAT)),
        AttrValue::F64(x) => ((x as *const f64).cast(), 1, Some(*H5T_NATIVE_DOUBLE)),
        AttrValue::I32(x) => ((x as *const i32).cast(), 1, Some(*H5T_NATIVE_INT)),
        AttrValue::F32s(v) => (v.as_ptr().cast(), v.len(), Some(*H5T_NATIVE_FLOAT)),
        AttrValue::F64s(v) => (v.as_ptr().cast(), v.len(), Some(*H5T_NATIVE_DOUBLE)),
        AttrValue::I32s(v) => (v.as_ptr().cast(), v.len(), Some(*H5T_NATIVE_INT)),
    };
    // SAFETY: `attr` is open; the type and space ids are closed once; the write reads
    // exactly the attribute's stored size from `ptr`, checked against `count` first
    // (text: the fixed-length string type's size in bytes, one element; numbers: the
    // element count, written from a native type of the same class).
    let result = unsafe {
        let ftype = h5::h5a::H5Aget_type(attr);
        let space = h5::h5a::H5Aget_space(attr);
        let points = h5::h5s::H5Sget_simple_extent_npoints(space);
        let result = if ftype < 0 || space < 0 || points < 0 {
            Err("inquiring".to_string())
        } else {
            let (stored, mem) = match native {
                None => (h5::h5t::H5Tget_size(ftype) * points as usize, ftype),
                Some(t) => (points as usize, t),
            };
            if stored != count {
                Err(format!("size ({stored} stored, {count} given)"))
            } else if count == 0 {
                Ok(())
            } else if h5::h5a::H5Awrite(attr, mem, ptr) < 0 {
                Err("writing".to_string())
            } else {
                Ok(())
            }
        };
        if ftype >= 0 {
            h5::h5t::H5Tclose(ftype);
        }
        if space >= 0 {
            h5::h5s::H5Sclose(space);
        }
        if h5::h5a::H5Aclose(attr) < 0 && result.is_ok() {
            Err("closing".to_string())
        } else {
            result
        }
    };
    result
}

impl H5File {
    /// Overwrites the value of the existing global attribute `name` in place (see
    /// [`overwrite_attr`]).
    pub(super) fn set_global_attr(&self, name: &str, value: &AttrValue) -> Result<(), NcError> {
        let cname = cstring(&self.path, name)?;
        let _held = lock();
        overwrite_attr(self.id, &cname, value).map_err(|what| NcError::Hdf5 {
            path: self.path.clone(),
            what: format!("{what} global attribute `{name}`"),
        })
    }
}

impl H5Dataset<'_> {
    /// Overwrites the value of the existing attribute `name` in place (see
    /// [`overwrite_attr`]).
    pub(super) fn set_attr(&self, name: &str, value: &AttrValue) -> Result<(), NcError> {
        let cname = cstring(&self.file.path, name)?;
        let _held = lock();
        overwrite_attr(self.id, &cname, value)
            .map_err(|what| self.fail(format!("{what} attribute `{name}`")))
    }

    /// Writes every value of the dataset (through HDF5's own filters, if it has any);
    /// `values` must hold exactly as many elements as the dataset.
    pub(super) fn write_all(&self, values: &Values) -> Result<(), NcError> {
        use h5::h5t::{H5T_NATIVE_DOUBLE, H5T_NATIVE_FLOAT, H5T_NATIVE_INT, H5T_NATIVE_SCHAR};
        let _held = lock();
        let (ptr, count, mem): (*const std::ffi::c_void, usize, hid_t) = match values {
            Values::F32(v) => (v.as_ptr().cast(), v.len(), *H5T_NATIVE_FLOAT),
            Values::F64(v) => (v.as_ptr().cast(), v.len(), *H5T_NATIVE_DOUBLE),
            Values::I32(v) => (v.as_ptr().cast(), v.len(), *H5T_NATIVE_INT),
            Values::I8(v) => (v.as_ptr().cast(), v.len(), *H5T_NATIVE_SCHAR),
        };
        // SAFETY: open dataset; the space id is closed once; the write reads `count`
        // elements of `mem` from `ptr`, checked to be the dataset's element count.
        let rc = unsafe {
            let space = h5::h5d::H5Dget_space(self.id);
            if space < 0 {
                return Err(self.fail("inquiring the dataspace".to_string()));
            }
            let points = h5::h5s::H5Sget_simple_extent_npoints(space);
            h5::h5s::H5Sclose(space);
            if points < 0 || points as usize != count {
                return Err(self.fail(format!("writing {count} values ({points} expected)")));
            }
            h5::h5d::H5Dwrite(
                self.id,
                mem,
                h5::h5s::H5S_ALL,
                h5::h5s::H5S_ALL,
                h5::h5p::H5P_DEFAULT,
                ptr,
            )
        };
        if rc < 0 {
            return Err(self.fail("writing the values".to_string()));
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
        let _held = lock();
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
        let _held = lock();
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
        let _held = lock();
        // SAFETY: an open dataset id, closed exactly once.
        unsafe { h5::h5d::H5Dclose(self.id) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child process started while a file is open for writing must not keep HDF5's
    /// lock on it: before descriptors were marked close-on-exec, the open below failed
    /// with NC_EHDFERR (-101) until the child exited.
    #[test]
    fn a_child_started_during_a_write_does_not_lock_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.nc");
        let mut file = create(&path).unwrap();
        file.add_dimension("x", 4).unwrap();
        // The child says it is running once it has exec'd: until then, a forked child
        // holds a copy of every descriptor, close-on-exec or not (a window no flag
        // closes; under load it lasted long enough to fail this test 1 run in 8).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "echo started; exec sleep 30"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "started\n");
        drop(file);
        let reopened = open(&path).map(|_| ());
        let rw = H5File::open_rw(&path, &path).map(|f| f.close());
        let _ = child.kill();
        let _ = child.wait();
        assert!(reopened.is_ok(), "{reopened:?}");
        assert!(matches!(rw, Ok(Ok(()))), "{rw:?}");
    }
}
