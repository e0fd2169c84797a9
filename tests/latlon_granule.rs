//! Lat-lon granules against EDP's own lat-lon headers (dimensions, variables, types,
//! attribute names, order and values), and their coordinate values.

mod common;

use std::sync::Arc;

use common::{edp_header, ncdump_h, parse_header, require, Sample};
use edp::granule::{self, Context, Encoding};
use edp::grid::Grid;
use edp::metadata::{MetadataSet, Product};
use edp::ncio::NcReader;

#[test]
fn latlon_granules_match_edp_headers() {
    require("ncdump");
    // EDP's headers have 50 levels; the lat-lon layout does not depend on N.
    let sample = Sample::new(
        12,
        50,
        1,
        &[
            "SSH", "SSHIBC", "SSHNOIBC", "THETA", "SALT", "EXFtaux", "EXFtauy", "oceTAUX",
            "oceTAUY",
        ],
    );
    let m = Arc::new(MetadataSet::embedded().unwrap());
    let grid = Arc::new(Grid::open(&sample.grid_dir()).unwrap());
    let ctx = Context {
        metadata: Arc::clone(&m),
        grid: Arc::clone(&grid),
        encoding: Encoding::default(),
        nonfinite: Default::default(),
        factors: Some(common::half_degree_factors(
            &grid,
            &sample.out().join("edp_factors"),
        )),
        coords: Default::default(),
    };
    for grouping in [
        "SEA_SURFACE_HEIGHT",
        "OCEAN_TEMPERATURE_SALINITY",
        "OCEAN_AND_ICE_SURFACE_STRESS",
    ] {
        let tasks = sample.product_tasks(Product::Latlon, grouping);
        assert_eq!(tasks.len(), 1, "{grouping}: one month synthesised");
        let produced = edp::run::produce(
            &tasks[0],
            &ctx,
            Default::default(),
            &edp::storage::Storage::new(&Default::default()),
        )
        .unwrap();
        let file = produced
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        assert!(file.ends_with("_latlon_0p50deg.nc"), "{file}");
        let mut ours = parse_header(&ncdump_h(&produced.path));
        let edp = edp_header(&file);
        common::without_deliberate_additions(&mut ours, &edp);

        common::assert_header_matches_edp(&ours, &edp, &file);
        common::assert_extents_equal_edp(&ours, &edp, &file, &common::EXTENTS);

        // Coordinate values: 0.5° centres and bounds; Z and Z_bnds from the grid.
        let r = NcReader::open(&produced.path).unwrap();
        let lat = r.read_f32("latitude").unwrap();
        let lon = r.read_f32("longitude").unwrap();
        assert_eq!(
            (lat[0], lat[359], lon[0], lon[719]),
            (-89.75, 89.75, -179.75, 179.75)
        );
        assert!(lat.windows(2).all(|w| (w[1] - w[0] - 0.5).abs() < 1e-4));
        let lat_b = r.read_f32("latitude_bnds").unwrap();
        assert_eq!((lat_b[0], lat_b[1], lat_b[719]), (-90.0, -89.5, 90.0));
        let lon_b = r.read_f32("longitude_bnds").unwrap();
        assert_eq!((lon_b[0], lon_b[1439]), (-180.0, 180.0));
        if grouping == "OCEAN_TEMPERATURE_SALINITY" {
            let z = r.read_f32("Z").unwrap();
            let zb = r.read_f32("Z_bnds").unwrap();
            assert_eq!(z.len(), 50);
            assert_eq!(z[0], grid.rc[0] as f32);
            assert_eq!(zb[0], 0.0);
            // Interfaces: cumulative thicknesses, each centre inside its bounds.
            let mut depth = 0.0;
            for k in 0..50 {
                assert!((zb[2 * k] as f64 + depth).abs() < 1e-3, "Z_bnds top {k}");
                depth += grid.drf[k];
                assert!(
                    (zb[2 * k + 1] as f64 + depth).abs() < 1e-3,
                    "Z_bnds bottom {k}"
                );
                assert!(
                    zb[2 * k + 1] < z[k] && z[k] < zb[2 * k],
                    "Z {k} inside its bounds"
                );
            }
            // Deeper levels have fewer wet cells.
            let theta = r.read_f32("THETA").unwrap();
            let wet = |k: usize| {
                theta[k * 259_200..(k + 1) * 259_200]
                    .iter()
                    .filter(|v| **v != granule::FILL_F32)
                    .count()
            };
            assert!(wet(0) > wet(30) && wet(30) > 0, "{} {}", wet(0), wet(30));
        }
        let storage = r.var_storage(&tasks[0].variables.keys().next().unwrap().clone());
        let storage = storage.unwrap();
        assert_eq!(storage.deflate, Some(5), "{file}: zlib 5 on data variables");
        assert!(storage.shuffle);
    }
}
