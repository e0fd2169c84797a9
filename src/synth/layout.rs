//! What the synthetic dataset contains and where it goes: the variable table
//! (point type, vertical location, analytic source), the V4r4 step numbers of
//! each output frequency, and EDP's input directory layout.

use std::path::{Path, PathBuf};

use super::analytic;
use crate::llc::PointType;

/// Vertical placement of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vertical {
    /// A 2D (surface) field.
    Surface,
    /// 3D at level centres (`k`, z = RC).
    Centre,
    /// 3D at level tops (`k_l`, z = RF[k]).
    Top,
}

/// Which analytic function a variable samples.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A scalar of (lon, lat, z, t).
    Scalar(fn(f64, f64, f64, f64) -> f64),
    /// The model-x component of a geographic (east, north) vector field.
    VectorX(fn(f64, f64, f64, f64) -> (f64, f64)),
    /// The model-y component of such a field.
    VectorY(fn(f64, f64, f64, f64) -> (f64, f64)),
    /// A smooth field of its own for a field the table does not know (see
    /// [`super::release::seeded`]).
    Seeded(u32),
}

/// One synthetic model-output variable.
#[derive(Debug, Clone, Copy)]
pub struct VarSpec {
    /// MITgcm diagnostic name (file prefix and `fldList`).
    pub name: &'static str,
    /// Horizontal location.
    pub point: PointType,
    /// Vertical location.
    pub vertical: Vertical,
    /// The analytic function sampled.
    pub source: Source,
    /// `available_diagnostics.log` code, units and title.
    pub code: &'static str,
    /// Units as MITgcm prints them.
    pub units: &'static str,
    /// Diagnostic title.
    pub title: &'static str,
    /// Partner of a vector component (its name), for the diagnostics log.
    pub mate: Option<&'static str>,
}

fn ssh(lon: f64, lat: f64, _z: f64, t: f64) -> f64 {
    analytic::ssh(lon, lat, t)
}
fn ibc(lon: f64, lat: f64, _z: f64, t: f64) -> f64 {
    analytic::ibc(lon, lat, t)
}
fn ssh_noibc(lon: f64, lat: f64, _z: f64, t: f64) -> f64 {
    analytic::ssh_noibc(lon, lat, t)
}
fn etan(lon: f64, lat: f64, _z: f64, t: f64) -> f64 {
    analytic::etan(lon, lat, t)
}
fn wind(lon: f64, lat: f64, _z: f64, t: f64) -> (f64, f64) {
    analytic::wind_stress_en(lon, lat, t)
}
fn ocean_stress(lon: f64, lat: f64, _z: f64, t: f64) -> (f64, f64) {
    analytic::ocean_stress_en(lon, lat, t)
}

/// All variables, in the order they are generated.
pub const VARIABLES: [VarSpec; 13] = [
    VarSpec {
        name: "SSH",
        point: PointType::C,
        vertical: Vertical::Surface,
        source: Source::Scalar(ssh),
        code: "SM      M1",
        units: "m",
        title: "Dynamic sea surface height anomaly",
        mate: None,
    },
    VarSpec {
        name: "SSHIBC",
        point: PointType::C,
        vertical: Vertical::Surface,
        source: Source::Scalar(ibc),
        code: "SM      M1",
        units: "m",
        title: "Inverted barometer correction to sea surface height",
        mate: None,
    },
    VarSpec {
        name: "SSHNOIBC",
        point: PointType::C,
        vertical: Vertical::Surface,
        source: Source::Scalar(ssh_noibc),
        code: "SM      M1",
        units: "m",
        title: "Sea surface height without inverted barometer correction",
        mate: None,
    },
    VarSpec {
        name: "ETAN",
        point: PointType::C,
        vertical: Vertical::Surface,
        source: Source::Scalar(etan),
        code: "SM      M1",
        units: "m",
        title: "Surface Height Anomaly",
        mate: None,
    },
    VarSpec {
        name: "THETA",
        point: PointType::C,
        vertical: Vertical::Centre,
        source: Source::Scalar(analytic::theta),
        code: "SMR     MR",
        units: "degC",
        title: "Potential Temperature",
        mate: None,
    },
    VarSpec {
        name: "SALT",
        point: PointType::C,
        vertical: Vertical::Centre,
        source: Source::Scalar(analytic::salt),
        code: "SMR     MR",
        units: "g/kg",
        title: "Salinity",
        mate: None,
    },
    VarSpec {
        name: "EXFtaux",
        point: PointType::C,
        vertical: Vertical::Surface,
        source: Source::VectorX(wind),
        code: "UM      U1",
        units: "N/m^2",
        title: "zonal surface wind stress, >0 increases uVel",
        mate: Some("EXFtauy"),
    },
    VarSpec {
        name: "EXFtauy",
        point: PointType::C,
        vertical: Vertical::Surface,
        source: Source::VectorY(wind),
        code: "VM      U1",
        units: "N/m^2",
        title: "meridional surface wind stress, >0 increases vVel",
        mate: Some("EXFtaux"),
    },
    VarSpec {
        name: "oceTAUX",
        point: PointType::U,
        vertical: Vertical::Surface,
        source: Source::VectorX(ocean_stress),
        code: "UU      U1",
        units: "N/m^2",
        title: "zonal surface wind stress, >0 increases uVel",
        mate: Some("oceTAUY"),
    },
    VarSpec {
        name: "oceTAUY",
        point: PointType::V,
        vertical: Vertical::Surface,
        source: Source::VectorY(ocean_stress),
        code: "VV      U1",
        units: "N/m^2",
        title: "meridional surf. wind stress, >0 increases vVel",
        mate: Some("oceTAUX"),
    },
    VarSpec {
        name: "UVEL",
        point: PointType::U,
        vertical: Vertical::Centre,
        source: Source::VectorX(analytic::velocity_en),
        code: "UUR     MR",
        units: "m/s",
        title: "Zonal Component of Velocity (m/s)",
        mate: Some("VVEL"),
    },
    VarSpec {
        name: "VVEL",
        point: PointType::V,
        vertical: Vertical::Centre,
        source: Source::VectorY(analytic::velocity_en),
        code: "VVR     MR",
        units: "m/s",
        title: "Meridional Component of Velocity (m/s)",
        mate: Some("UVEL"),
    },
    VarSpec {
        name: "WVELMASS",
        point: PointType::C,
        vertical: Vertical::Top,
        source: Source::Scalar(analytic::w_velocity),
        code: "WM      LR",
        units: "m/s",
        title: "Vertical Mass-Weighted Comp of Velocity",
        mate: None,
    },
];

/// Looks a variable up by its diagnostic name (exact spelling).
pub fn variable(name: &str) -> Option<&'static VarSpec> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// An output frequency of the synthetic dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    /// Monthly means, `diags_monthly/<VAR>_mon_mean`.
    Monthly,
    /// Daily means, `diags_daily/<VAR>_day_mean`.
    Daily,
    /// Daily snapshots, `diags_inst/<VAR>_day_snap`.
    Snapshot,
}

impl Freq {
    /// The frequency directory under the release directory.
    pub fn dir(self) -> &'static str {
        match self {
            Freq::Monthly => "diags_monthly",
            Freq::Daily => "diags_daily",
            Freq::Snapshot => "diags_inst",
        }
    }

    /// The period token of the input file names.
    pub fn token(self) -> &'static str {
        match self {
            Freq::Monthly => "mon_mean",
            Freq::Daily => "day_mean",
            Freq::Snapshot => "day_snap",
        }
    }

    /// Step of the `index`-th (0-based) output of this frequency.
    pub fn step(self, index: usize) -> u64 {
        match self {
            Freq::Monthly => monthly_step(index),
            Freq::Daily | Freq::Snapshot => 12 + 24 * index as u64,
        }
    }
}

fn is_leap(y: u64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        1 => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
        3 | 5 | 8 | 10 => 30,
        _ => 31,
    }
}

/// Step closing month `m` (0-based from January 1992): hours from the model
/// start 1992-01-01T12:00 to 00:00 on the first day of month `m + 1`
/// (732, 1428, 2172, …; proleptic Gregorian calendar).
pub fn monthly_step(m: usize) -> u64 {
    let days: u64 = (0..=m as u64)
        .map(|k| days_in_month(1992 + k / 12, k % 12))
        .sum();
    24 * days - 12
}

/// `<VAR>_<token>`, the directory and file-name prefix of a variable.
pub fn prefix(var: &str, freq: Freq) -> String {
    format!("{var}_{}", freq.token())
}

/// The MDS base path (no extension) of `var` at `step`:
/// `<release_dir>/<freq dir>/<VAR>_<token>/<VAR>_<token>.<10-digit step>`.
pub fn field_base(release_dir: &Path, freq: Freq, var: &str, step: u64) -> PathBuf {
    let p = prefix(var, freq);
    release_dir
        .join(freq.dir())
        .join(&p)
        .join(format!("{p}.{step:010}"))
}

/// MITgcm's `available_diagnostics.log` for the synthetic variables (xmitgcm
/// reads point types from it); `extra` are the other fields written (`--variables
/// all`), listed after them.
pub fn available_diagnostics(nz: usize, extra: &[&super::release::Var]) -> String {
    let mut s = format!(
        " Total Nb of available Diagnostics: ndiag={:>4}\n\
         ------------------------------------------------------------------------------------\n\
         \x20 Num |<-Name->|Levs|  mate |<- code ->|<--  Units   -->|<- Tile (max=80c)\n\
         ------------------------------------------------------------------------------------\n",
        VARIABLES.len() + extra.len()
    );
    for (k, v) in VARIABLES.iter().enumerate() {
        let levs = if v.vertical == Vertical::Surface {
            1
        } else {
            nz
        };
        let mate = v
            .mate
            .and_then(|m| VARIABLES.iter().position(|w| w.name == m))
            .map(|p| format!("{:>5}", p + 1))
            .unwrap_or_default();
        s.push_str(&format!(
            "{:>5} |{:<8}|{:>3} |{:<7}|{:<10}|{:<16}|{}\n",
            k + 1,
            v.name,
            levs,
            mate,
            v.code,
            v.units,
            v.title
        ));
    }
    for (k, v) in extra.iter().enumerate() {
        let (levs, vcode) = match v.vertical {
            Vertical::Surface => (1, '1'),
            Vertical::Centre => (nz, 'R'),
            Vertical::Top => (nz, 'R'),
        };
        let p = match v.point {
            PointType::U => 'U',
            PointType::V => 'V',
            PointType::G => 'Z',
            _ => 'M',
        };
        let level = if v.vertical == Vertical::Top {
            'L'
        } else {
            'M'
        };
        let code = format!("S{p}      {level}{vcode}");
        s.push_str(&format!(
            "{:>5} |{:<8}|{:>3} |{:<7}|{:<10}|{:<16}|{}\n",
            VARIABLES.len() + k + 1,
            v.name,
            levs,
            "",
            code,
            "1",
            "synthetic field"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monthly_steps_follow_the_calendar() {
        assert_eq!(monthly_step(0), 732);
        assert_eq!(monthly_step(1), 1428);
        assert_eq!(monthly_step(2), 2172);
        // December 1992 ends 1993-01-01T00: 366 days after 1992-01-01 (leap).
        assert_eq!(monthly_step(11), 366 * 24 - 12);
        assert_eq!(monthly_step(12 * 26 - 1), (days_1992_to(2018)) * 24 - 12);
    }

    fn days_1992_to(y: u64) -> u64 {
        (1992..y).map(|y| if is_leap(y) { 366 } else { 365 }).sum()
    }

    #[test]
    fn paths_follow_edp_layout() {
        let b = field_base(Path::new("/r/V4r4"), Freq::Monthly, "SSH", 732);
        assert_eq!(
            b,
            Path::new("/r/V4r4/diags_monthly/SSH_mon_mean/SSH_mon_mean.0000000732")
        );
        let b = field_base(Path::new("V4r4"), Freq::Snapshot, "THETA", 12);
        assert_eq!(
            b,
            Path::new("V4r4/diags_inst/THETA_day_snap/THETA_day_snap.0000000012")
        );
    }
}
