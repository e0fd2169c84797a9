//! The closed-form ocean the synthetic dataset samples, public so tests of
//! regridding and vector rotation can compute the exact expected answer.
//!
//! Arguments: `lon`, `lat` in degrees, `z` in metres (negative downward, MITgcm's
//! `RC`/`RF` values) and `t` in days since the model start 1992-01-01T12:00:00.
//! A file with step `s` holds the functions evaluated at the instant `T(s)`,
//! i.e. `t = s / 24` ([`time_days`]) — not averaged over the period — and
//! multiplied by the land mask (exactly 0.0 on land).
//!
//! Vector fields are given as geographic (east, north) components; the files
//! hold them rotated into the model axes with [`to_model_xy`]. Every vector
//! field tapers to zero at the poles so it is continuous on the sphere.

use std::f64::consts::PI;

const YEAR_DAYS: f64 = 365.25;

/// Days since the model start of the instant marked by `step` (1-hour steps).
pub fn time_days(step: u64) -> f64 {
    step as f64 / 24.0
}

/// Rotates a geographic (east, north) vector into model (x, y) components with
/// the grid's AngleCS/AngleSN: the inverse of EDP's
/// `east = x·CS − y·SN`, `north = x·SN + y·CS`.
pub fn to_model_xy(east: f64, north: f64, cs: f64, sn: f64) -> (f64, f64) {
    (east * cs + north * sn, -east * sn + north * cs)
}

fn seasonal(t: f64) -> f64 {
    (2.0 * PI * t / YEAR_DAYS).sin()
}

fn gauss(x: f64, w: f64) -> f64 {
    (-(x / w) * (x / w)).exp()
}

/// Vanishes linearly in colatitude at the poles and is ≈1 elsewhere.
fn polar_taper(lat: f64) -> f64 {
    let c = lat.to_radians().cos().max(0.0);
    c / (c + 0.1) * 1.1
}

/// Dynamic sea surface height anomaly, metres (|ssh| < 1).
pub fn ssh(lon: f64, lat: f64, t: f64) -> f64 {
    let (l, p) = (lon.to_radians(), lat.to_radians());
    let gyres = 0.45 * gauss(lat - 28.0, 14.0) * (0.8 + 0.2 * (l + 0.5).cos())
        + 0.35 * gauss(lat + 28.0, 12.0) * (0.8 + 0.2 * (2.0 * l).sin());
    let acc = -0.8 * gauss(lat + 65.0, 12.0);
    let arctic = -0.2 * gauss(lat - 80.0, 10.0);
    let eddies = 0.08 * (3.0 * l - 2.0 * PI * t / 45.0).sin() * (2.0 * p).sin();
    gyres + acc + arctic + eddies + 0.06 * seasonal(t) * p.sin()
}

/// Inverted-barometer correction, metres (|ibc| < 0.05): a travelling
/// pressure pattern with a few-day period so daily fields differ.
pub fn ibc(lon: f64, lat: f64, t: f64) -> f64 {
    let (l, p) = (lon.to_radians(), lat.to_radians());
    0.03 * (2.0 * l + 2.0 * PI * t / 6.0).sin() * p.cos() + 0.015 * seasonal(t) * p.sin()
}

/// Sea surface height without the inverted-barometer correction
/// (`SSH = SSHNOIBC − SSHIBC`).
pub fn ssh_noibc(lon: f64, lat: f64, t: f64) -> f64 {
    ssh(lon, lat, t) + ibc(lon, lat, t)
}

/// Model free-surface height ETAN, metres: the uncorrected height lowered
/// under the (seasonal) polar sea-ice load.
pub fn etan(lon: f64, lat: f64, t: f64) -> f64 {
    let ice =
        0.05 * (1.0 - 0.5 * seasonal(t) * (lat / 10.0).tanh()) * gauss(lat.abs() - 85.0, 15.0);
    ssh_noibc(lon, lat, t) - ice
}

/// Sea surface temperature before the depth profile (°C).
fn sst(lon: f64, lat: f64, t: f64) -> f64 {
    let l = lon.to_radians();
    let base = -1.8 + 30.0 * gauss(lat - 5.0, 38.0) + 1.0 * (l + 1.0).sin() * gauss(lat, 30.0);
    base + 2.0 * seasonal(t) * lat.to_radians().sin() * gauss(lat.abs() - 40.0, 25.0)
}

/// Potential temperature, °C, within −1.8 … 30 and decreasing with depth
/// except under the polar surface water.
pub fn theta(lon: f64, lat: f64, z: f64, t: f64) -> f64 {
    let deep = 0.5 + 1.5 * lat.to_radians().cos() - 0.25 * (-z / 6000.0);
    let s = sst(lon, lat, t);
    let v = deep + (s - deep) * (z / 700.0).exp();
    v.clamp(-1.8, 30.0)
}

/// Salinity (1e-3, PSU-like), within 33 … 37.
pub fn salt(lon: f64, lat: f64, z: f64, t: f64) -> f64 {
    let l = lon.to_radians();
    let surface = 34.8 + 1.4 * gauss(lat.abs() - 24.0, 12.0)
        - 1.3 * gauss(lat - 82.0, 14.0)
        - 0.5 * gauss(lat - 5.0, 8.0)
        + 0.3 * (l - 0.3).sin() * lat.to_radians().cos()
        + 0.1 * seasonal(t) * gauss(lat - 60.0, 20.0);
    let deep = 34.7 + 0.1 * lat.to_radians().sin();
    (deep + (surface - deep) * (z / 500.0).exp()).clamp(33.0, 37.0)
}

/// Surface wind stress (east, north), N m⁻² (|τ| < 0.3): trades, westerlies
/// and a travelling synoptic pattern.
pub fn wind_stress_en(lon: f64, lat: f64, t: f64) -> (f64, f64) {
    let (l, p) = (lon.to_radians(), lat.to_radians());
    // Stronger in each hemisphere's winter; tanh keeps it smooth across the equator.
    let season = 1.0 - 0.25 * seasonal(t) * (lat / 10.0).tanh();
    let zonal = -0.07 * gauss(lat.abs() - 15.0, 12.0) + 0.16 * gauss(lat.abs() - 50.0, 10.0);
    let storms = 0.04 * (2.0 * l - 2.0 * PI * t / 5.0).sin() * p.cos();
    let e = zonal * season + storms;
    let n = 0.04 * (2.0 * l).sin() * p.cos() + 0.03 * (l + 2.0 * PI * t / 7.0).cos() * p.cos();
    let k = polar_taper(lat);
    (e * k, n * k)
}

/// Ocean-surface stress (east, north) felt by the ocean, N m⁻²: the wind
/// stress reduced under seasonal polar ice.
pub fn ocean_stress_en(lon: f64, lat: f64, t: f64) -> (f64, f64) {
    let (e, n) = wind_stress_en(lon, lat, t);
    let ice = 0.5 * gauss(lat.abs() - 85.0, 12.0) * (1.0 + 0.3 * seasonal(t));
    (e * (1.0 - ice), n * (1.0 - ice))
}

/// Horizontal velocity (east, north), m s⁻¹ (|u| < 0.5): the ACC, equatorial
/// currents and a meandering meridional flow, decaying with depth.
pub fn velocity_en(lon: f64, lat: f64, z: f64, t: f64) -> (f64, f64) {
    let (l, p) = (lon.to_radians(), lat.to_radians());
    let decay = (z / 900.0).exp();
    let acc = 0.25 * gauss(lat + 55.0, 7.0) * (0.6 + 0.4 * (z / 2500.0).exp());
    let equatorial =
        -0.2 * gauss(lat - 3.0, 4.0) * decay + 0.25 * gauss(lat, 2.5) * gauss(z + 120.0, 60.0);
    let gyre = 0.08 * (3.0 * p).sin() * decay;
    let e = acc + equatorial + gyre;
    let n = (0.1 * (2.0 * l - 2.0 * PI * t / 30.0).sin() * p.cos() + 0.03 * seasonal(t) * p.sin())
        * decay;
    let k = polar_taper(lat);
    (e * k, n * k)
}

/// Vertical velocity (WVELMASS), m s⁻¹, positive upward (|w| ≲ 3e-5): Ekman
/// pumping cells, non-zero (small) at the surface.
pub fn w_velocity(lon: f64, lat: f64, z: f64, t: f64) -> f64 {
    let (l, p) = (lon.to_radians(), lat.to_radians());
    let shape = (0.05 + (1.0 - (z / 300.0).exp())) * (z / 3000.0).exp();
    2e-5 * (2.0 * l).sin() * (2.0 * p).sin() * shape * (1.0 + 0.2 * seasonal(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_plausible() {
        let mut ext = [(f64::MAX, f64::MIN); 6];
        let mut upd = |k: usize, v: f64| {
            ext[k].0 = ext[k].0.min(v);
            ext[k].1 = ext[k].1.max(v);
        };
        for lat in (-80..=90).step_by(2) {
            for lon in (-180..180).step_by(5) {
                let (lo, la) = (lon as f64, lat as f64);
                for t in [0.0, 100.0, 200.0, 300.0] {
                    upd(0, ssh(lo, la, t));
                    upd(1, ibc(lo, la, t));
                    let (e, n) = wind_stress_en(lo, la, t);
                    upd(2, e.abs().max(n.abs()));
                    for z in [0.0, -100.0, -1000.0, -5000.0] {
                        upd(3, theta(lo, la, z, t));
                        upd(4, salt(lo, la, z, t));
                        let (u, v) = velocity_en(lo, la, z, t);
                        upd(5, u.abs().max(v.abs()));
                    }
                }
            }
        }
        assert!(ext[0].0 > -1.0 && ext[0].1 < 1.0, "ssh {:?}", ext[0]);
        assert!(ext[1].0 > -0.05 && ext[1].1 < 0.05, "ibc {:?}", ext[1]);
        assert!(ext[2].1 < 0.3, "stress {:?}", ext[2]);
        assert!(
            ext[3].0 >= -1.8 && ext[3].1 <= 30.0 && ext[3].1 > 25.0,
            "theta {:?}",
            ext[3]
        );
        assert!(ext[4].0 >= 33.0 && ext[4].1 <= 37.0, "salt {:?}", ext[4]);
        assert!(ext[5].1 < 0.5, "velocity {:?}", ext[5]);
    }
}
