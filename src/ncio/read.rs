//! Reading a netCDF file's root group back: dimensions, variables, attributes, values
//! and storage settings (grid geometry inputs, checks, tests).

use std::fmt;
use std::path::{Path, PathBuf};

use netcdf::types::NcVariableType;

use super::{ffi, AttrValue, DType, NcError, VarStorage};

/// Read access to a netCDF file's root group.
pub struct NcReader {
    path: PathBuf,
    file: netcdf::File,
}

impl fmt::Debug for NcReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NcReader")
            .field("path", &self.path)
            .finish()
    }
}

impl NcReader {
    pub fn open(path: &Path) -> Result<Self, NcError> {
        ffi::quiet_hdf5_errors();
        let file = ffi::open(path).map_err(|source| NcError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(NcReader {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Dimensions and their lengths, in file order.
    pub fn dims(&self) -> Vec<(String, usize)> {
        self.file
            .dimensions()
            .map(|d| (d.name(), d.len()))
            .collect()
    }

    /// Variable names, in file order.
    pub fn var_names(&self) -> Vec<String> {
        self.file.variables().map(|v| v.name()).collect()
    }

    fn var(&self, name: &str) -> Result<netcdf::Variable<'_>, NcError> {
        self.file.variable(name).ok_or_else(|| NcError::Missing {
            path: self.path.clone(),
            what: format!("variable `{name}`"),
        })
    }

    /// Dimension names of a variable, outermost first.
    pub fn var_dims(&self, name: &str) -> Result<Vec<String>, NcError> {
        Ok(self
            .var(name)?
            .dimensions()
            .iter()
            .map(|d| d.name())
            .collect())
    }

    /// Element type of a variable (an error for types this module does not write).
    pub fn var_type(&self, name: &str) -> Result<DType, NcError> {
        let t = self.var(name)?.vartype();
        DType::from_nc(&t).ok_or_else(|| NcError::Type {
            path: self.path.clone(),
            var: name.to_string(),
            expected: "F32, F64 or I32".to_string(),
            found: format!("{t:?}"),
        })
    }

    /// A variable's attributes in file order, `_FillValue` included.
    pub fn var_attrs(&self, name: &str) -> Result<Vec<(String, AttrValue)>, NcError> {
        let var = self.var(name)?;
        self.convert_attrs(var.attributes(), &format!("variable `{name}`"))
    }

    /// Global attributes in file order.
    pub fn global_attrs(&self) -> Result<Vec<(String, AttrValue)>, NcError> {
        self.convert_attrs(self.file.attributes(), "the root group")
    }

    fn convert_attrs<'a>(
        &self,
        attrs: impl Iterator<Item = netcdf::Attribute<'a>>,
        owner: &str,
    ) -> Result<Vec<(String, AttrValue)>, NcError> {
        attrs
            .map(|a| {
                let aname = a.name().to_string();
                let value = a.value().map_err(|source| NcError::Read {
                    path: self.path.clone(),
                    what: format!("attribute `{aname}` of {owner}"),
                    source,
                })?;
                let value = AttrValue::from_nc(value).map_err(|v| NcError::AttrType {
                    path: self.path.clone(),
                    owner: owner.to_string(),
                    attr: aname.clone(),
                    found: format!("{v:?}"),
                })?;
                Ok((aname, value))
            })
            .collect()
    }

    /// Reads all values of a variable whose type is exactly `expected` (no silent
    /// conversion: a type mismatch is an error).
    fn read_all<T: netcdf::NcTypeDescriptor + Copy>(
        &self,
        name: &str,
        expected: DType,
    ) -> Result<Vec<T>, NcError> {
        let var = self.var(name)?;
        let t = var.vartype();
        if DType::from_nc(&t) != Some(expected) {
            return Err(NcError::Type {
                path: self.path.clone(),
                var: name.to_string(),
                expected: format!("{expected:?}"),
                found: format!("{t:?}"),
            });
        }
        var.get_values::<T, _>(..).map_err(|source| NcError::Read {
            path: self.path.clone(),
            what: format!("values of variable `{name}`"),
            source,
        })
    }

    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, NcError> {
        self.read_all(name, DType::F32)
    }

    /// Reads all values of a numeric variable of any type (float or integer, any
    /// width), converted by netCDF-C: inputs written by other tools (netCDF4-python,
    /// xarray, MITgcm's own converters) often hold float64 where we keep f32, or the
    /// reverse. A non-numeric variable is an error naming it.
    fn read_converted<T: netcdf::NcTypeDescriptor + Copy>(
        &self,
        name: &str,
        expected: &str,
    ) -> Result<Vec<T>, NcError> {
        self.read_converted_box(name, expected, netcdf::Extents::All)
    }

    /// [`NcReader::read_converted`] of the values in `extents` only.
    fn read_converted_box<T: netcdf::NcTypeDescriptor + Copy>(
        &self,
        name: &str,
        expected: &str,
        extents: netcdf::Extents,
    ) -> Result<Vec<T>, NcError> {
        let var = self.var(name)?;
        let t = var.vartype();
        if !matches!(t, NcVariableType::Float(_) | NcVariableType::Int(_)) {
            return Err(NcError::Type {
                path: self.path.clone(),
                var: name.to_string(),
                expected: expected.to_string(),
                found: format!("{t:?}"),
            });
        }
        var.get_values::<T, _>(extents)
            .map_err(|source| NcError::Read {
                path: self.path.clone(),
                what: format!("values of variable `{name}`"),
                source,
            })
    }

    /// All values of a numeric variable of any type as f32 (f64 values are rounded to
    /// the nearest f32, as the granules store them).
    pub fn read_as_f32(&self, name: &str) -> Result<Vec<f32>, NcError> {
        self.read_converted(name, "a number (read as f32)")
    }

    /// The box `start .. start + count` (one range per dimension) of a numeric variable
    /// of any type as f32, row-major: one tile of a grid variable without the others.
    pub fn read_box_as_f32(
        &self,
        name: &str,
        start: &[usize],
        count: &[usize],
    ) -> Result<Vec<f32>, NcError> {
        let ranges: Vec<std::ops::Range<usize>> =
            start.iter().zip(count).map(|(&s, &c)| s..s + c).collect();
        self.read_converted_box(name, "a number (read as f32)", ranges.into())
    }

    /// All values of a numeric variable of any type as f64 (exact for f32 and
    /// integers up to 2^53).
    pub fn read_as_f64(&self, name: &str) -> Result<Vec<f64>, NcError> {
        self.read_converted(name, "a number (read as f64)")
    }

    pub fn read_f64(&self, name: &str) -> Result<Vec<f64>, NcError> {
        self.read_all(name, DType::F64)
    }

    pub fn read_i32(&self, name: &str) -> Result<Vec<i32>, NcError> {
        self.read_all(name, DType::I32)
    }

    pub fn read_i8(&self, name: &str) -> Result<Vec<i8>, NcError> {
        self.read_all(name, DType::I8)
    }

    /// Chunking, deflate level and shuffle of a variable (what `ncdump -s` shows as
    /// `_ChunkSizes`, `_DeflateLevel`, `_Shuffle`).
    pub fn var_storage(&self, name: &str) -> Result<VarStorage, NcError> {
        let var = self.var(name)?;
        let chunking = var.chunking().map_err(|source| NcError::Read {
            path: self.path.clone(),
            what: format!("chunking of variable `{name}`"),
            source,
        })?;
        let (deflate, shuffle) = ffi::inq_deflate(&self.path, name)?;
        Ok(VarStorage {
            chunking,
            deflate,
            shuffle,
        })
    }
}
